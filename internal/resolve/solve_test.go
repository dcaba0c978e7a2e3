package resolve

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/pkgspec"
)

// cat builds a universe from "pkg@version: dep constraint kind, ..." lines.
func cat(t testing.TB, lines ...string) *Universe {
	t.Helper()
	pkgs := map[string][]Candidate{}
	for _, l := range lines {
		head, deps, _ := strings.Cut(l, ":")
		name, ver, _ := strings.Cut(strings.TrimSpace(head), "@")
		c := Candidate{Version: ver}
		for _, d := range strings.Split(deps, ",") {
			f := strings.Fields(d)
			if len(f) == 0 {
				continue
			}
			dep := Dependency{Package: f[0], Constraint: f[1], Kind: pkgspec.Shared}
			if len(f) > 2 && f[2] == "component" {
				dep.Kind = pkgspec.Component
			}
			if len(f) > 2 && f[2] == "optional" {
				dep.Optional = true
			}
			c.Dependencies = append(c.Dependencies, dep)
		}
		pkgs[name] = append(pkgs[name], c)
	}
	u, err := NewUniverse(pkgs)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// versions summarises a solution as key=version.
func versions(s *Solution) []string {
	var out []string
	for _, in := range s.Instances {
		out = append(out, fmt.Sprintf("%s=%s", in.Key, in.Version))
	}
	return out
}

// TestOptionalSharedDependency: an optional shared dependency is wired to the
// shared instance when another app brings it (at a version its constraint
// allows), and is never installed for its own sake.
func TestOptionalSharedDependency(t *testing.T) {
	u := cat(t, "grafana@10.5.8: loki ^6 optional, prometheus ^80 optional",
		"starter@1.0.0: loki ^6", "old-starter@1.0.0: loki ^5",
		"loki@5.0.0:", "loki@6.49.0:", "prometheus@80.14.4:")
	tests := map[string]struct {
		requests []Request
		want     []string
		deps     map[string]string
	}{
		"alone: nothing is installed for it": {
			requests: []Request{{Package: "grafana"}},
			want:     []string{"app:grafana=10.5.8"},
			deps:     map[string]string{},
		},
		"with an app that brings loki: wired to it": {
			requests: []Request{{Package: "grafana"}, {Package: "starter"}},
			want:     []string{"app:grafana=10.5.8", "app:starter=1.0.0", "shared:loki=6.49.0"},
			deps:     map[string]string{"loki": "shared:loki"},
		},
		"loki at a version outside the constraint: left out": {
			requests: []Request{{Package: "grafana"}, {Package: "old-starter"}},
			want:     []string{"app:grafana=10.5.8", "app:old-starter=1.0.0", "shared:loki=5.0.0"},
			deps:     map[string]string{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sol, err := Solve(u, Input{Requests: tc.requests})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, versions(sol)); diff != "" {
				t.Errorf("solution (-want +got):\n%s", diff)
			}
			g, _ := sol.Get("app:grafana")
			got := g.Dependencies
			if got == nil {
				got = map[string]string{}
			}
			if diff := cmp.Diff(tc.deps, got); diff != "" {
				t.Errorf("grafana's dependencies (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSolve(t *testing.T) {
	tests := map[string]struct {
		u    *Universe
		in   Input
		want []string
	}{
		"newest that fits": {
			u:    cat(t, "web@1.0.0:", "web@1.2.0:", "web@2.0.0-rc.1:"),
			in:   Input{Requests: []Request{{Package: "web"}}},
			want: []string{"app:web=1.2.0"},
		},
		"constraint": {
			u:    cat(t, "web@1.0.0:", "web@1.2.0:", "web@2.0.0:"),
			in:   Input{Requests: []Request{{Package: "web", Constraint: "<1.2"}}},
			want: []string{"app:web=1.0.0"},
		},
		"shared dependency de-duplicated": {
			u: cat(t, "airflow@2.0.0: cert-manager >=1.0", "grafana@11.0.0: cert-manager ^1.2",
				"cert-manager@1.1.0:", "cert-manager@1.3.0:", "cert-manager@2.0.0:"),
			in:   Input{Requests: []Request{{Package: "airflow"}, {Package: "grafana"}}},
			want: []string{"app:airflow=2.0.0", "app:grafana=11.0.0", "shared:cert-manager=1.3.0"},
		},
		"components per app": {
			u: cat(t, "airflow@2.0.0: postgresql >=16 component, redis ^7 component",
				"superset@4.0.0: postgresql <17 component",
				"postgresql@16.4.0:", "postgresql@17.2.0:", "redis@7.4.1:", "redis@8.0.0:"),
			in: Input{Requests: []Request{{Package: "airflow"}, {Package: "superset"}}},
			want: []string{"app:airflow=2.0.0", "app:airflow/postgresql=17.2.0", "app:airflow/redis=7.4.1",
				"app:superset=4.0.0", "app:superset/postgresql=16.4.0"},
		},
		"two apps of one package": {
			u:    cat(t, "redis@7.4.1:", "redis@8.0.0:"),
			in:   Input{Requests: []Request{{App: "cache", Package: "redis"}, {App: "queue", Package: "redis", Constraint: "^7"}}},
			want: []string{"app:cache=8.0.0", "app:queue=7.4.1"},
		},
		"backtracks to an older version": {
			// The newest app needs an operator the other app forbids; the older one fits.
			u: cat(t, "airflow@2.9.0: operator >=1.12", "airflow@2.8.0: operator >=1.10",
				"superset@4.0.0: operator <1.12", "operator@1.10.0:", "operator@1.12.0:"),
			in:   Input{Requests: []Request{{Package: "airflow"}, {Package: "superset"}}},
			want: []string{"app:airflow=2.8.0", "app:superset=4.0.0", "shared:operator=1.10.0"},
		},
		"backtracks through a chosen dependency": {
			// b's newest is picked first; c then forces an older b.
			u:    cat(t, "a@1.0.0: b >=1, c >=1", "b@2.0.0:", "b@1.0.0:", "c@1.0.0: b <2"),
			in:   Input{Requests: []Request{{Package: "a"}}},
			want: []string{"app:a=1.0.0", "shared:b=1.0.0", "shared:c=1.0.0"},
		},
		"two packages move together (glasskube#400)": {
			// An installed app locked at 1.0 must upgrade together with the shared
			// operator for the new app to fit.
			u: cat(t, "monitor@1.0.0: operator ^1", "monitor@2.0.0: operator ^2",
				"logs@1.0.0: operator ^2", "operator@1.5.0:", "operator@2.1.0:"),
			in: Input{Requests: []Request{{Package: "monitor", Installed: true}, {Package: "logs"}},
				Locked: map[string]string{"app:monitor": "1.0.0", "shared:operator": "1.5.0"}},
			want: []string{"app:logs=1.0.0", "app:monitor=2.0.0", "shared:operator=2.1.0"},
		},
		"locked version kept": {
			u: cat(t, "web@1.0.0: db ^1", "web@1.1.0: db ^1", "db@1.0.0:", "db@1.1.0:"),
			in: Input{Requests: []Request{{Package: "web", Installed: true}},
				Locked: map[string]string{"app:web": "1.0.0", "shared:db": "1.0.0"}},
			want: []string{"app:web=1.0.0", "shared:db=1.0.0"},
		},
		"preferred version first": {
			u:    cat(t, "app@1.0.0: db >=1 component", "db@1.0.0:", "db@2.0.0:"),
			in:   Input{Requests: []Request{{Package: "app"}}, Prefer: map[string]string{"db": "1.0.0"}},
			want: []string{"app:app=1.0.0", "app:app/db=1.0.0"},
		},
		"preferred version that does not fit": {
			u:    cat(t, "app@1.0.0: db >=2 component", "db@1.0.0:", "db@2.0.0:", "db@3.0.0:"),
			in:   Input{Requests: []Request{{Package: "app"}}, Prefer: map[string]string{"db": "1.0.0"}},
			want: []string{"app:app=1.0.0", "app:app/db=3.0.0"},
		},
		"locked beats preferred": {
			u:    cat(t, "app@1.0.0: db >=1", "db@1.0.0:", "db@2.0.0:", "db@3.0.0:"),
			in:   Input{Requests: []Request{{Package: "app"}}, Prefer: map[string]string{"db": "1.0.0"}, Locked: map[string]string{"shared:db": "2.0.0"}},
			want: []string{"app:app=1.0.0", "shared:db=2.0.0"},
		},
		"missing package avoided by backtracking": {
			u:    cat(t, "web@2.0.0: gone ^1", "web@1.0.0:"),
			in:   Input{Requests: []Request{{Package: "web"}}},
			want: []string{"app:web=1.0.0"},
		},
		"components of components": {
			u:    cat(t, "app@1.0.0: stack ^1 component", "stack@1.0.0: db ^1 component, op ^1", "db@1.0.0:", "op@1.0.0:"),
			in:   Input{Requests: []Request{{Package: "app"}}},
			want: []string{"app:app=1.0.0", "app:app/stack=1.0.0", "app:app/stack/db=1.0.0", "shared:op=1.0.0"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sol, err := Solve(tc.u, tc.in)
			if err != nil {
				t.Fatalf("Solve: %v", err)
			}
			if diff := cmp.Diff(tc.want, versions(sol)); diff != "" {
				t.Errorf("solution (-want +got):\n%s", diff)
			}
			again, _ := Solve(tc.u, tc.in)
			if diff := cmp.Diff(sol, again); diff != "" {
				t.Errorf("a second solve differs (-first +second):\n%s", diff)
			}
		})
	}
}

func TestSolveDependencyKeys(t *testing.T) {
	u, _ := NewUniverse(map[string][]Candidate{
		"airflow":      {{Version: "2.0.0", Dependencies: []Dependency{{Name: "metadata", Package: "postgresql", Constraint: "*", Kind: pkgspec.Component}, {Package: "cert-manager", Constraint: "*", Kind: pkgspec.Shared}}}},
		"postgresql":   {{Version: "16.0.0"}},
		"cert-manager": {{Version: "1.0.0"}},
	})
	sol, err := Solve(u, Input{Requests: []Request{{App: "etl", Package: "airflow"}}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := sol.Get(AppKey("etl"))
	want := Instance{Key: "app:etl", Role: RoleApp, Package: "airflow", Version: "2.0.0",
		Dependencies: map[string]string{"metadata": "app:etl/metadata", "cert-manager": "shared:cert-manager"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("app instance (-want +got):\n%s", diff)
	}
	if c, ok := sol.Get("app:etl/metadata"); !ok || c.Role != RoleComponent || c.Package != "postgresql" {
		t.Errorf("component instance = %+v, %v", c, ok)
	}
}

func TestSolveErrors(t *testing.T) {
	tests := map[string]struct {
		u    *Universe
		in   Input
		want string
	}{
		"conflict with an installed app": {
			u: cat(t, "airflow@2.9.0: postgres-operator >=1.12", "superset@4.0.0: postgres-operator <1.12",
				"postgres-operator@1.11.0:", "postgres-operator@1.12.0:"),
			in: Input{Requests: []Request{{Package: "superset", Installed: true}, {Package: "airflow"}}},
			want: "cannot resolve dependencies: superset 4.0.0 (already installed) needs postgres-operator <1.12, " +
				"but airflow 2.9.0 needs >=1.12; no version of postgres-operator satisfies both (available: 1.12.0, 1.11.0)",
		},
		"conflict after trying older versions": {
			u:    cat(t, "a@2.0.0: lib ^2", "a@1.0.0: lib ^2", "b@1.0.0: lib ^1", "lib@1.0.0:", "lib@2.0.0:"),
			in:   Input{Requests: []Request{{Package: "b"}, {Package: "a"}}},
			want: "b 1.0.0 needs lib ^1, but a 2.0.0 needs ^2; no version of lib satisfies both",
		},
		"no version in range": {
			u:    cat(t, "web@1.0.0: db >=9", "db@1.0.0:", "db@2.0.0:"),
			in:   Input{Requests: []Request{{Package: "web"}}},
			want: "web 1.0.0 needs db >=9, but the catalog only has 2.0.0, 1.0.0",
		},
		"you asked for a missing version": {
			u:    cat(t, "web@1.0.0:"),
			in:   Input{Requests: []Request{{Package: "web", Constraint: "^3"}}},
			want: "you asked for web ^3, but the catalog only has 1.0.0",
		},
		"unknown package": {
			u:    cat(t, "web@1.0.0:"),
			in:   Input{Requests: []Request{{Package: "wbe"}}},
			want: "wbe is not a package in any catalog; check the name with 'berth search wbe'",
		},
		"missing dependency": {
			u:    cat(t, "web@1.0.0: postgress ^1"),
			in:   Input{Requests: []Request{{Package: "web"}}},
			want: "web 1.0.0 needs postgress ^1, which is not in any catalog",
		},
		"shared cycle": {
			u:    cat(t, "app@1.0.0: a ^1", "a@1.0.0: b ^1", "b@1.0.0: a ^1"),
			in:   Input{Requests: []Request{{Package: "app"}}},
			want: "dependency cycle: a 1.0.0 -> b 1.0.0 -> a 1.0.0; packages must not depend on each other in a circle",
		},
		"component cycle": {
			u:    cat(t, "a@1.0.0: b ^1 component", "b@1.0.0: a ^1 component"),
			in:   Input{Requests: []Request{{Package: "a"}}},
			want: "dependency cycle: a -> b -> a: a package cannot contain itself as a component",
		},
		"many versions of many": {
			u:    cat(t, "x@1.0.0: y ^1, z ^1", "y@1.0.0: w ^1", "z@1.0.0: w ^2", "w@1.0.0:", "w@2.0.0:", "w@3.0.0:"),
			in:   Input{Requests: []Request{{Package: "x"}}},
			want: "y 1.0.0 needs w ^1, but z 1.0.0 needs ^2; no version of w satisfies both (available: 3.0.0, 2.0.0, 1.0.0)",
		},
		"three requirements that only together exclude every version": {
			u:    cat(t, "x@1.0.0: w <3, y ^1, z ^1", "y@1.0.0: w >1", "z@1.0.0: w !=2.0.0", "w@1.0.0:", "w@2.0.0:", "w@3.0.0:"),
			in:   Input{Requests: []Request{{Package: "x"}}},
			want: "no version of w satisfies all of: x 1.0.0 needs <3; y 1.0.0 needs >1; z 1.0.0 needs !=2.0.0 (available: 3.0.0, 2.0.0, 1.0.0)",
		},
		"bad constraint": {
			u:    cat(t, "web@1.0.0:"),
			in:   Input{Requests: []Request{{Package: "web", Constraint: ">>1"}}},
			want: `app web: ">>1" is not a version constraint`,
		},
		"duplicate app": {
			u:    cat(t, "web@1.0.0:"),
			in:   Input{Requests: []Request{{Package: "web"}, {Package: "web"}}},
			want: `app "web" is requested twice`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Solve(tc.u, tc.in)
			if err == nil {
				t.Fatal("Solve succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error =\n  %v\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

func TestSolveTooComplex(t *testing.T) {
	// Every one of 12 packages has 10 versions; the last needs a missing version
	// of the first, so the search must try everything and give up.
	var lines []string
	for p := 0; p < 12; p++ {
		for v := 0; v < 10; v++ {
			dep := fmt.Sprintf("p%d >=1", p+1)
			if p == 11 {
				dep = "p0 >=99"
			}
			lines = append(lines, fmt.Sprintf("p%d@1.%d.0: %s", p, v, dep))
		}
	}
	_, err := Solve(cat(t, lines...), Input{Requests: []Request{{Package: "p0"}}, MaxSteps: 1000})
	if !errors.Is(err, ErrTooComplex) {
		t.Fatalf("Solve error = %v, want ErrTooComplex", err)
	}
}

// synthetic builds a catalog of n packages with v versions each. Package i
// depends on up to fanout packages with higher indexes (so there are no
// cycles), through ranges that cover about half of their versions, with an
// occasional component.
func synthetic(tb testing.TB, n, v, fanout int) *Universe {
	tb.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	pkgs := make(map[string][]Candidate, n)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("pkg%04d", i)
		for j := 0; j < v; j++ {
			c := Candidate{Version: fmt.Sprintf("1.%d.0", j)}
			for k := 0; k < fanout && i+1 < n; k++ {
				dep := i + 1 + r.IntN(min(50, n-i-1))
				lo := r.IntN(v / 2)
				kind := pkgspec.Shared
				if r.IntN(10) == 0 {
					kind = pkgspec.Component
				}
				c.Dependencies = append(c.Dependencies, Dependency{
					Name: fmt.Sprintf("d%d", k), Package: fmt.Sprintf("pkg%04d", dep),
					Constraint: fmt.Sprintf(">=1.%d.0 <1.%d.0", lo, lo+v/2), Kind: kind,
				})
			}
			pkgs[name] = append(pkgs[name], c)
		}
	}
	u, err := NewUniverse(pkgs)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func benchInput() Input {
	var reqs []Request
	for i := 0; i < 20; i++ {
		reqs = append(reqs, Request{App: fmt.Sprintf("app%d", i), Package: fmt.Sprintf("pkg%04d", i*7)})
	}
	return Input{Requests: reqs}
}

func TestSynthetic(t *testing.T) {
	u := synthetic(t, 1000, 50, 3)
	sol, err := Solve(u, benchInput())
	if err != nil {
		t.Fatalf("Solve: %v", err)
	}
	if len(sol.Instances) < 500 {
		t.Errorf("solution has %d instances; the synthetic catalog should pull in most packages", len(sol.Instances))
	}
	// Every chosen version satisfies every constraint on it.
	for _, in := range sol.Instances {
		cands := u.pkgs[in.Package]
		var chosen *version
		for i := range cands {
			if cands[i].v.Original() == in.Version {
				chosen = &cands[i]
			}
		}
		for _, d := range chosen.deps {
			dep, ok := sol.Get(in.Dependencies[d.key()])
			if !ok {
				t.Fatalf("%s: dependency %s has no instance", in.Key, d.key())
			}
			c, _ := (&solver{cons: map[string]*semverConstraints{}}).constraint(d.Constraint)
			if !c.Check(mustVersion(t, dep.Version)) {
				t.Errorf("%s %s needs %s %s, got %s", in.Package, in.Version, d.Package, d.Constraint, dep.Version)
			}
		}
	}
}

// BenchmarkSolve resolves 20 apps against 1,000 packages x 50 versions with
// three dependencies per version. The target is under 100 ms per solve.
func BenchmarkSolve(b *testing.B) {
	u := synthetic(b, 1000, 50, 3)
	in := benchInput()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Solve(u, in); err != nil {
			b.Fatal(err)
		}
	}
}
