package resolve

import (
	"testing"

	"github.com/Masterminds/semver/v3"
)

type semverConstraints = constraint

func mustVersion(t *testing.T, s string) *semver.Version {
	t.Helper()
	v, err := semver.NewVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
