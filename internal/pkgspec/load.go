package pkgspec

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads and validates dir/package.yaml from fsys. file names the package in
// errors (for example its path on disk); it defaults to dir/package.yaml.
func Load(fsys fs.FS, dir, file string) (*Package, error) {
	p := path.Join(dir, FileName)
	if file == "" {
		file = p
	}
	data, err := fs.ReadFile(fsys, p)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read the package description: %w", file, err)
	}
	pkg, err := Parse(file, data)
	if err != nil {
		return nil, err
	}
	if err := pkg.checkFiles(fsys, dir); err != nil {
		return nil, err
	}
	return pkg, nil
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// Parse parses and validates the contents of a package.yaml; file names it in errors.
func Parse(file string, data []byte) (*Package, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &ValidationError{Errors: []*FieldError{yamlError(file, err)}}
	}
	if len(doc.Content) == 0 {
		return nil, &ValidationError{Errors: []*FieldError{{File: file, Msg: "the file is empty", Fix: "start from the example in docs/packages.md"}}}
	}
	var pkg Package
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&pkg); err != nil {
		return nil, &ValidationError{Errors: decodeErrors(file, err)}
	}
	pkg.File = file
	pkg.node = doc.Content[0]
	if err := pkg.validate(); err != nil {
		return nil, err
	}
	return &pkg, nil
}

func yamlError(file string, err error) *FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	fe := &FieldError{File: file, Msg: msg, Fix: "fix the YAML syntax"}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		fe.Line, _ = strconv.Atoi(m[1])
		fe.Msg = m[2]
	}
	return fe
}

func decodeErrors(file string, err error) []*FieldError {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []*FieldError{yamlError(file, err)}
	}
	var out []*FieldError
	for _, e := range te.Errors {
		fe := &FieldError{File: file, Msg: e}
		if m := yamlLine.FindStringSubmatch(e); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Msg = m[2]
		}
		switch {
		case strings.Contains(fe.Msg, "not found in type"):
			fe.Msg = strings.Replace(fe.Msg, "not found in type", "is not a field of", 1)
			fe.Msg = strings.ReplaceAll(fe.Msg, "pkgspec.", "")
			fe.Fix = "check its spelling against docs/packages.md"
		case strings.Contains(fe.Msg, "cannot unmarshal"):
			fe.Fix = "use the type docs/packages.md gives for this field"
		}
		out = append(out, fe)
	}
	return out
}

// line returns the line of the node at the given path below the document root
// (string keys for mappings, ints for sequences), or of its nearest existing
// ancestor.
func (p *Package) line(pathElems ...any) int {
	n := p.node
	if n == nil {
		return 0
	}
	best := n.Line
	for _, el := range pathElems {
		var next *yaml.Node
		switch k := el.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return best
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next = n.Content[i+1]
					if next.Kind == yaml.ScalarNode || next.Kind == yaml.AliasNode {
						best = next.Line
					} else {
						best = n.Content[i].Line
					}
					break
				}
			}
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return best
			}
			next = n.Content[k]
			best = next.Line
		}
		if next == nil {
			return best
		}
		n = next
	}
	return best
}
