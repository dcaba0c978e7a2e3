package resolve

import (
	"testing"

	"github.com/Masterminds/semver/v3"
)

// TestConstraintMatchesLibrary checks the compiled constraints against the
// semver library on a grid of constraints and versions.
func TestConstraintMatchesLibrary(t *testing.T) {
	constraints := []string{
		"*", "x", "1", "1.x", "1.2", "1.2.x", "1.2.3", "=1.2.3", "v1.2.3", "!=1.2.3", ">1.2.3", ">=1.2", ">=1.2.3", "<2", "<1.3",
		"<=1.2.3", "^1.2.3", "^1.2", "^1", "^0.2.3", "^0.2", "^0.0.3", "^0", "~1.2.3", "~1.2", "~1", "~0.2.1",
		">=1.2.0 <2.0.0", ">=1.2.0, <2.0.0", "<1 || >=3", "^1.2 || ^3", ">1.2", "<=1.2", "1.2 - 1.4.5", "!=1.2.x",
		"> 1.2.3", ">=1.2.3-beta.1",
	}
	var versions []*semver.Version
	for _, s := range []string{"0.0.1", "0.0.3", "0.0.4", "0.1.0", "0.2.0", "0.2.3", "0.2.9", "0.3.0", "1.0.0", "1.1.9", "1.2.0", "1.2.2", "1.2.3",
		"1.2.4", "1.2.99", "1.3.0", "1.4.5", "1.4.6", "1.9.0", "2.0.0", "2.0.0-rc.1", "1.2.3-beta.2", "3.0.0", "3.1.0", "10.0.0"} {
		versions = append(versions, semver.MustParse(s))
	}
	for _, raw := range constraints {
		c, err := compileConstraint(raw)
		if err != nil {
			t.Errorf("%q: %v", raw, err)
			continue
		}
		for _, v := range versions {
			if got, want := c.Check(v), c.slow.Check(v); got != want {
				t.Errorf("%q.Check(%s) = %v, the semver library says %v (fast path: %v)", raw, v, got, want, c.groups != nil)
			}
		}
	}
	if _, err := compileConstraint(">>1"); err == nil {
		t.Error(`">>1" compiled`)
	}
	fast := 0
	for _, raw := range constraints {
		if c, _ := compileConstraint(raw); c.groups != nil {
			fast++
		}
	}
	if fast < 25 {
		t.Errorf("only %d of %d constraints use the fast path", fast, len(constraints))
	}
}
