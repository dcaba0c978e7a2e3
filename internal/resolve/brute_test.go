package resolve

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"berth.dev/berth/internal/pkgspec"
)

// TestSolveAgreesWithBruteForce checks on many small random catalogs that
// Solve finds a solution exactly when one exists (backjumping skips no
// solution), and that what it finds satisfies every constraint.
func TestSolveAgreesWithBruteForce(t *testing.T) {
	const pkgs, vers = 5, 4
	r := rand.New(rand.NewPCG(7, 11))
	constraints := []string{"=1.0.0", "=1.3.0", ">=1.2.0", "<1.2.0", ">=1.1.0 <1.3.0", "!=1.1.0", "<1.1.0 || >=1.3.0"}
	solved, failed := 0, 0
	for round := 0; round < 300; round++ {
		cands := map[string][]Candidate{}
		deps := map[[2]int][][2]any{} // (package, version) -> (target, constraint)
		for p := 0; p < pkgs; p++ {
			for v := 0; v < vers; v++ {
				c := Candidate{Version: fmt.Sprintf("1.%d.0", v)}
				for q := p + 1; q < pkgs; q++ {
					if r.IntN(2) == 0 {
						con := constraints[r.IntN(len(constraints))]
						c.Dependencies = append(c.Dependencies, Dependency{Package: fmt.Sprintf("p%d", q), Constraint: con, Kind: pkgspec.Shared})
						deps[[2]int{p, v}] = append(deps[[2]int{p, v}], [2]any{q, con})
					}
				}
				cands[fmt.Sprintf("p%d", p)] = append(cands[fmt.Sprintf("p%d", p)], c)
			}
		}
		u, err := NewUniverse(cands)
		if err != nil {
			t.Fatal(err)
		}
		root := r.IntN(vers)
		want := bruteForce(t, pkgs, vers, root, deps)
		sol, err := Solve(u, Input{Requests: []Request{{Package: "p0", Constraint: fmt.Sprintf("=1.%d.0", root)}}})
		switch {
		case want && err != nil:
			t.Fatalf("round %d: a solution exists but Solve says: %v", round, err)
		case !want && err == nil:
			t.Fatalf("round %d: no solution exists but Solve returned %v", round, versions(sol))
		case err == nil:
			solved++
			for _, in := range sol.Instances {
				var p, v int
				fmt.Sscanf(in.Package, "p%d", &p)
				fmt.Sscanf(in.Version, "1.%d.0", &v)
				for _, d := range deps[[2]int{p, v}] {
					target, _ := sol.Get(SharedKey(fmt.Sprintf("p%d", d[0])))
					c, _ := compileConstraint(d[1].(string))
					if !c.Check(mustVersion(t, target.Version)) {
						t.Fatalf("round %d: %s %s needs p%d %s, got %s", round, in.Package, in.Version, d[0], d[1], target.Version)
					}
				}
			}
		default:
			failed++
			if err.(*ConflictError).Explanation == "" {
				t.Fatalf("round %d: a conflict without an explanation", round)
			}
		}
	}
	if solved < 30 || failed < 30 {
		t.Errorf("the random catalogs are lopsided: %d solvable, %d not; adjust the generator", solved, failed)
	}
}

// bruteForce reports whether some choice of versions (or absence) for every
// package satisfies p0 at version 1.root.0 and every dependency of every chosen version.
func bruteForce(t *testing.T, pkgs, vers, root int, deps map[[2]int][][2]any) bool {
	choice := make([]int, pkgs) // -1: absent
	var try func(i int) bool
	try = func(i int) bool {
		if i == pkgs {
			if choice[0] != root {
				return false
			}
			for p := 0; p < pkgs; p++ {
				if choice[p] < 0 {
					continue
				}
				for _, d := range deps[[2]int{p, choice[p]}] {
					q := d[0].(int)
					if choice[q] < 0 {
						return false
					}
					c, _ := compileConstraint(d[1].(string))
					if !c.Check(mustVersion(t, fmt.Sprintf("1.%d.0", choice[q]))) {
						return false
					}
				}
			}
			return true
		}
		for v := -1; v < vers; v++ {
			choice[i] = v
			if try(i + 1) {
				return true
			}
		}
		return false
	}
	return try(0)
}
