// Package testcatalog is the fixture catalog berth's tests run against: the
// small hand-written packages (postgresql 16.4.0 and 17.2.0, redis 7.4.1 and
// 7.4.2, airflow 2.10.3, cert-manager 1.16.2, grafana 11.3.0) that the
// built-in catalog held before it moved to upstream charts. They render
// without a chart repository, install quickly on the local test cluster and
// keep the versions, channels, outputs and upgrade notes the tests expect.
// memcached 1.6.0 and 1.6.1 (settings only, no workload) were written here
// for the tests of settings a version renames (upgrade.renamed).
//
// A test package reads them as the catalog named builtin by calling Use in its
// TestMain; berth processes the tests start inherit the setting.
package testcatalog

import (
	"os"
	"path/filepath"
	"runtime"
)

// Dir returns the directory of the fixture catalog.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Use makes this process, and the processes it starts, read the fixture
// catalog as the built-in one, by setting BERTH_BUILTIN_CATALOG (see
// catalog.BuiltinEnv). Call it in TestMain, before m.Run.
func Use() {
	if err := os.Setenv("BERTH_BUILTIN_CATALOG", Dir()); err != nil {
		panic(err)
	}
}
