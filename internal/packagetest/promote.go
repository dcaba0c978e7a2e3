package packagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"go.yaml.in/yaml/v3"

	"berth.dev/berth/internal/atomicfile"
	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
)

// PromoteOptions names the channel to move in a directory catalog.
type PromoteOptions struct {
	// Catalog is the catalog's directory (NAME/VERSION/package.yaml below it).
	Catalog string
	Package string
	Version string
	Channel string
}

// PromoteResult says what Promote changed.
type PromoteResult struct {
	// File is the channels file written.
	File    string `json:"file"`
	Channel string `json:"channel"`
	// From is the version the channel pointed to before; empty when it is new.
	From string `json:"from,omitempty"`
	To   string `json:"to"`
	// Report is the test report that allowed the move.
	Report string `json:"report"`
}

// RefusalReason says why Promote refused to move a channel.
type RefusalReason string

// Refusal reasons.
const (
	// ReasonNotTested: the version has no test report.
	ReasonNotTested RefusalReason = "not-tested"
	// ReasonFailed: its test report did not pass.
	ReasonFailed RefusalReason = "failed"
	// ReasonChanged: the package changed since its report was written.
	ReasonChanged RefusalReason = "changed"
)

func (r RefusalReason) String() string { return string(r) }

// RefusedError is a promotion Promote refused; the channel is unchanged.
type RefusedError struct {
	Package, Version, Channel string
	Reason                    RefusalReason
	// Report is the report's path; Detail says more.
	Report string
	Detail string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("not moving channel %s of %s to %s: %s", e.Channel, e.Package, e.Version, e.Detail)
}

var channelName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Promote points a channel of a package in a directory catalog at a version,
// only when the version's test report passed and was made of the package as
// it is now. channels.yaml is rewritten atomically, keeping its comments.
func Promote(ctx context.Context, o PromoteOptions) (*PromoteResult, error) {
	if !channelName.MatchString(o.Channel) {
		return nil, fmt.Errorf("%q is not a channel name; use lowercase letters such as stable, warm, latest", o.Channel)
	}
	dir := filepath.Join(o.Catalog, o.Package, o.Version)
	pkg, err := pkgspec.Load(os.DirFS(dir), ".", filepath.Join(dir, pkgspec.FileName))
	if err != nil {
		return nil, err
	}
	if pkg.Name != o.Package || pkg.Version != o.Version {
		return nil, fmt.Errorf("%s: the package says %s %s, but it is in the catalog's directory for %s %s", pkg.File, pkg.Name, pkg.Version, o.Package, o.Version)
	}
	if err := checkReport(dir, o); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	file := filepath.Join(o.Catalog, o.Package, catalog.ChannelsFile)
	from, data, err := setChannel(file, o.Channel, o.Version)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(file, data, 0o644); err != nil {
		return nil, err
	}
	return &PromoteResult{File: file, Channel: o.Channel, From: from, To: o.Version, Report: ReportPath(dir)}, nil
}

// checkReport refuses a version whose report is missing, failed, is of
// another package or no longer matches the package's files.
func checkReport(dir string, o PromoteOptions) error {
	refuse := func(reason RefusalReason, format string, args ...any) error {
		return &RefusedError{Package: o.Package, Version: o.Version, Channel: o.Channel, Reason: reason, Report: ReportPath(dir), Detail: fmt.Sprintf(format, args...)}
	}
	r, err := ReadReport(dir)
	if errors.Is(err, ErrNoReport) {
		return refuse(ReasonNotTested, "it has no test report (%s)", ReportPath(dir))
	}
	if err != nil {
		return err
	}
	if r.Package != o.Package || r.Version != o.Version {
		return refuse(ReasonNotTested, "%s is the report of %s %s", ReportPath(dir), r.Package, r.Version)
	}
	if !r.Passed() {
		failed := "no step"
		for _, s := range r.Steps {
			if s.Status == StatusFailed {
				failed = fmt.Sprintf("step %s failed: %s", s.Name, s.Error)
				break
			}
		}
		return refuse(ReasonFailed, "its test of %s did not pass (%s)", r.Finished.Format("2006-01-02 15:04 MST"), failed)
	}
	digest, err := Digest(dir)
	if err != nil {
		return err
	}
	if digest != r.Digest {
		return refuse(ReasonChanged, "the package changed after its test of %s (its digest is %s, the report's %s)", r.Finished.Format("2006-01-02 15:04 MST"), digest, r.Digest)
	}
	return nil
}

// setChannel returns the channels file with channel set to version, and the
// version it pointed to before. A missing file is created.
func setChannel(file, channel, version string) (string, []byte, error) {
	b, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return "", nil, fmt.Errorf("%s: %v; write one line per channel, such as stable: 1.2.3", file, err)
	}
	if len(doc.Content) == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return "", nil, fmt.Errorf("%s: not a map of channels to versions; write one line per channel, such as stable: 1.2.3", file)
	}
	var from string
	found := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == channel {
			from = m.Content[i+1].Value
			m.Content[i+1].Value = version
			m.Content[i+1].Tag = "!!str"
			m.Content[i+1].Style = 0
			found = true
		}
	}
	if !found {
		m.Content = append(m.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: channel},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: version})
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return "", nil, err
	}
	return from, out.Bytes(), nil
}
