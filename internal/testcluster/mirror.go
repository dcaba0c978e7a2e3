package testcluster

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// mirrorEnv is catalog.MirrorEnv (not imported: catalog's own tests use this
// package).
const mirrorEnv = "BERTH_CHART_MIRROR"

// chartMirror finds the offline mirror of upstream chart repositories: the
// directory $BERTH_CHART_MIRROR names, else ../shared/charts beside the
// module's root (where the project's machines keep it), else "".
func chartMirror() string {
	if v := os.Getenv(mirrorEnv); v != "" {
		return v
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, dir := range []string{filepath.Join(root, "..", "shared", "charts"), "/work/shared/charts"} {
		if st, err := os.Stat(filepath.Join(dir, "README.md")); err == nil && !st.IsDir() {
			return filepath.Clean(dir)
		}
	}
	return ""
}

// ChartMirror returns the offline chart mirror tests read upstream charts
// from (see chartMirror), failing the test when there is none.
func ChartMirror(t testing.TB) string {
	t.Helper()
	dir := chartMirror()
	if dir == "" {
		t.Fatalf("no offline chart mirror: set %s to the directory laid out by upstream repository URL (../shared/charts)", mirrorEnv)
	}
	return dir
}

// useChartMirror makes the process read upstream charts from the mirror, so
// packages of the built-in catalog render offline in every test binary.
func useChartMirror() {
	if os.Getenv(mirrorEnv) == "" {
		if dir := chartMirror(); dir != "" {
			os.Setenv(mirrorEnv, dir)
		}
	}
}
