package resolve_test

import (
	"fmt"

	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/resolve"
)

func ExampleSolve() {
	u, _ := resolve.NewUniverse(map[string][]resolve.Candidate{
		"airflow": {
			{Version: "2.9.0", Dependencies: []resolve.Dependency{{Package: "postgres-operator", Constraint: ">=1.12", Kind: pkgspec.Shared}}},
			{Version: "2.8.0", Dependencies: []resolve.Dependency{{Package: "postgres-operator", Constraint: ">=1.10", Kind: pkgspec.Shared}}},
		},
		"superset":          {{Version: "4.0.0", Dependencies: []resolve.Dependency{{Package: "postgres-operator", Constraint: "<1.12", Kind: pkgspec.Shared}}}},
		"postgres-operator": {{Version: "1.11.0"}, {Version: "1.12.0"}},
	})
	sol, err := resolve.Solve(u, resolve.Input{Requests: []resolve.Request{{Package: "superset", Installed: true}, {Package: "airflow"}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, in := range sol.Instances {
		fmt.Println(in.Key, in.Version)
	}
	_, err = resolve.Solve(u, resolve.Input{Requests: []resolve.Request{{Package: "superset", Installed: true}, {Package: "airflow", Constraint: ">=2.9"}}})
	fmt.Println(err)
	// Output:
	// app:airflow 2.8.0
	// app:superset 4.0.0
	// shared:postgres-operator 1.11.0
	// cannot resolve dependencies: superset 4.0.0 (already installed) needs postgres-operator <1.12, but airflow 2.9.0 needs >=1.12; no version of postgres-operator satisfies both (available: 1.12.0, 1.11.0)
}
