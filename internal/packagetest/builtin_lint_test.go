package packagetest

import (
	"context"
	"path/filepath"
	"testing"
)

// TestBuiltinCatalogLintsClean lints every version of every package of the
// built-in catalog, from the chart mirror: none may have an error.
func TestBuiltinCatalogLintsClean(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "..", "catalog", "*", "*", "package.yaml"))
	if err != nil || len(dirs) < 15 {
		t.Fatalf("found %d package versions in the built-in catalog (%v)", len(dirs), err)
	}
	cache := t.TempDir()
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(filepath.Dir(dir))+"@"+filepath.Base(dir), func(t *testing.T) {
			res, err := Lint(context.Background(), LintOptions{Dir: dir, ChartCache: cache})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range res.Findings {
				if f.Severity == SeverityError {
					t.Errorf("%s:%d: %s: %s", f.File, f.Line, f.Field, f.Message)
				}
			}
		})
	}
}
