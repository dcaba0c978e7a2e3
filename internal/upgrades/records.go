package upgrades

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/workspace"
)

// RecordsFile is the workspace file that records the versions not to bring
// again: rejected by a person, or rolled back because they were not healthy.
const RecordsFile = "upgrades.yaml"

// HoldKind says why a version is held back.
type HoldKind string

// Hold kinds.
const (
	HoldRejected   HoldKind = "rejected"
	HoldRolledBack HoldKind = "rolledBack"
)

func (k HoldKind) String() string { return string(k) }

// Hold is one app version that is not proposed or applied again until a
// person approves it.
type Hold struct {
	App     string    `json:"app"`
	Version string    `json:"version"`
	Kind    HoldKind  `json:"kind"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// Records is upgrades.yaml.
type Records struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Holds      []Hold `json:"holds,omitempty"`
}

// ReadRecords reads upgrades.yaml from the workspace at the top of fsys,
// strictly; a missing file holds nothing.
func ReadRecords(fsys fs.FS) (*Records, error) {
	r := &Records{APIVersion: workspace.APIVersion, Kind: "UpgradeRecords"}
	data, err := fs.ReadFile(fsys, RecordsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(data, r); err != nil {
		return nil, fmt.Errorf("%s: %w", RecordsFile, err)
	}
	if r.Kind != "UpgradeRecords" || r.APIVersion != workspace.APIVersion {
		return nil, fmt.Errorf("%s: want apiVersion %s and kind UpgradeRecords, got %q and %q", RecordsFile, workspace.APIVersion, r.APIVersion, r.Kind)
	}
	for i, h := range r.Holds {
		if h.App == "" || h.Version == "" || (h.Kind != HoldRejected && h.Kind != HoldRolledBack) {
			return nil, fmt.Errorf("%s: holds[%d]: needs app, version and kind (rejected or rolledBack)", RecordsFile, i)
		}
	}
	return r, nil
}

// Marshal returns the file's bytes, holds sorted by app and version.
func (r *Records) Marshal() ([]byte, error) {
	slices.SortStableFunc(r.Holds, func(a, b Hold) int {
		if c := strings.Compare(a.App, b.App); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return yaml.Marshal(r)
}

// Held returns the hold of app at version, if any.
func (r *Records) Held(app, version string) (Hold, bool) {
	for _, h := range r.Holds {
		if h.App == app && h.Version == version {
			return h, true
		}
	}
	return Hold{}, false
}

// Add records a hold, replacing one of the same app and version.
func (r *Records) Add(h Hold) {
	r.Release(h.App, h.Version)
	r.Holds = append(r.Holds, h)
}

// Release removes the hold of app at version; it reports whether there was one.
func (r *Records) Release(app, version string) bool {
	n := len(r.Holds)
	r.Holds = slices.DeleteFunc(r.Holds, func(h Hold) bool { return h.App == app && h.Version == version })
	return len(r.Holds) != n
}
