package apply

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// ReadManifests reads the Kubernetes objects in the given YAML or JSON files, and
// in the *.yaml, *.yml and *.json files of the given directories (recursively, in
// lexical order). Documents may be separated by "---"; a v1 List is expanded
// into its items. "-" reads standard input from stdin.
func ReadManifests(stdin io.Reader, paths ...string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, p := range paths {
		if p == "-" {
			got, err := DecodeManifests("standard input", stdin)
			if err != nil {
				return nil, err
			}
			objs = append(objs, got...)
			continue
		}
		files, err := manifestFiles(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				return nil, fmt.Errorf("reading manifests: %w", err)
			}
			got, err := DecodeManifests(f, fh)
			fh.Close()
			if err != nil {
				return nil, err
			}
			objs = append(objs, got...)
		}
	}
	return objs, nil
}

func manifestFiles(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("reading manifests: %w (pass a YAML file or a directory of them with -f)", err)
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, path)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading manifests in %s: %w", p, err)
	}
	sort.Strings(files)
	return files, nil
}

// DecodeManifests decodes the YAML or JSON documents in r; source names r in errors.
func DecodeManifests(source string, r io.Reader) ([]*unstructured.Unstructured, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", source, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("%s: document %d is not valid YAML: %w", source, doc, err)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if err := checkObject(obj); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, doc, err)
		}
		if obj.IsList() {
			list, err := obj.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", source, doc, err)
			}
			for i := range list.Items {
				item := &list.Items[i]
				if err := checkObject(item); err != nil {
					return nil, fmt.Errorf("%s: document %d, item %d: %w", source, doc, i+1, err)
				}
				objs = append(objs, item)
			}
			continue
		}
		objs = append(objs, obj)
	}
}

func checkObject(obj *unstructured.Unstructured) error {
	if obj.GetAPIVersion() == "" || obj.GetKind() == "" {
		return fmt.Errorf("object has no apiVersion or kind: every Kubernetes object needs both (for example apiVersion: v1, kind: ConfigMap)")
	}
	if obj.IsList() {
		return nil
	}
	if obj.GetName() == "" {
		if obj.GetGenerateName() != "" {
			return fmt.Errorf("%s uses metadata.generateName, which cannot be applied repeatedly: give it a fixed metadata.name", obj.GetKind())
		}
		return fmt.Errorf("%s has no metadata.name: add one", obj.GetKind())
	}
	return nil
}
