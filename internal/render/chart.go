package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/ignore"

	"berth.dev/berth/internal/pkgspec"
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// loadChart loads the chart in dir of fsys as helm loads a chart directory:
// the files its .helmignore (and helm's default rule, dot files in
// templates/) exclude are left out, so the same files always give the chart
// helm would package.
func loadChart(fsys fs.FS, dir string) (*chart.Chart, error) {
	rules := ignore.Empty()
	if b, err := fs.ReadFile(fsys, path.Join(dir, ignore.HelmIgnore)); err == nil {
		if rules, err = ignore.Parse(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("%s: %w", ignore.HelmIgnore, err)
		}
	}
	rules.AddDefaults()
	var files []*archive.BufferedFile
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		if rel == "" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if rules.Ignore(rel, fi) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: rel, Data: bytes.TrimPrefix(b, utf8BOM)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loader.LoadFiles(files)
}

// loadArchive loads a chart from a repository's archive after checking it is
// the archive the package pins.
func loadArchive(b []byte, c pkgspec.Chart) (*chart.Chart, error) {
	if b == nil {
		return nil, fmt.Errorf("the archive of %s %s from %s was not fetched", c.Chart, c.Version, c.Repo)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != c.Digest {
		return nil, fmt.Errorf("the archive of %s %s has digest %s, but the package pins %s", c.Chart, c.Version, got, c.Digest)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if ch.Metadata.Version != c.Version {
		return nil, fmt.Errorf("the archive holds %s %s, not version %s", ch.Metadata.Name, ch.Metadata.Version, c.Version)
	}
	return ch, nil
}

// checkDependencies refuses a chart whose Chart.yaml declares a dependency
// that its charts/ folder does not hold, as helm install and helm template do.
func checkDependencies(ch *chart.Chart) error {
	have := map[string]bool{}
	for _, d := range ch.Dependencies() {
		have[d.Name()] = true
	}
	var missing []string
	for _, d := range ch.Metadata.Dependencies {
		if d != nil && !have[d.Name] {
			missing = append(missing, d.Name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("the dependencies %s of chart %s are declared in its Chart.yaml but missing from its charts/ folder; vendor them there (helm dependency build does)", strings.Join(missing, ", "), ch.Name())
	}
	return nil
}
