package lifecycle

import (
	"context"
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"

	"berth.dev/berth/internal/workspace"
)

// BreakingChange is a version change that crosses a breaking boundary: a new
// major version, or a version its package marks breaking.
type BreakingChange struct {
	VersionChange
	// Why names the boundary: "major version 16 -> 17" or "17.1.0 is marked breaking".
	Why string `json:"why"`
	// Note is what the package says must happen to the data.
	Note string `json:"note,omitempty"`
}

// BreakingError refuses version changes that cross a breaking boundary.
type BreakingError struct {
	Op      string // "upgrade" or "rollback"
	Changes []BreakingChange
}

func (e *BreakingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s refused: ", e.Op)
	for i, c := range e.Changes {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s -> %s crosses a breaking boundary (%s)", c.Package, c.From, c.To, c.Why)
		if c.Note != "" {
			fmt.Fprintf(&b, ": %s", strings.TrimSpace(c.Note))
		}
	}
	b.WriteString("; nothing was changed")
	return b.String()
}

// breaking returns the changes that cross a breaking boundary, in either
// direction: between From and To the major version changes, or a version in
// (lower, higher] is marked breaking by its package.
func (e *Env) breaking(ctx context.Context, changes []VersionChange) ([]BreakingChange, error) {
	var out []BreakingChange
	for _, c := range changes {
		if c.From == "" || c.To == "" {
			continue
		}
		from, err1 := semver.NewVersion(c.From)
		to, err2 := semver.NewVersion(c.To)
		if err1 != nil || err2 != nil || from.Equal(to) {
			continue
		}
		lo, hi := from, to
		if hi.LessThan(lo) {
			lo, hi = hi, lo
		}
		f, err := e.Catalogs.Find(ctx, c.Package)
		if err != nil {
			return nil, err
		}
		var bc *BreakingChange
		// Versions are newest first; the note of the newest boundary wins.
		for _, v := range f.Entry.Versions {
			sv, err := semver.NewVersion(v.Version)
			if err != nil || !sv.GreaterThan(lo) || sv.GreaterThan(hi) {
				continue
			}
			pkg, _, err := e.Catalogs.Load(ctx, f, v.Version)
			if err != nil {
				return nil, err
			}
			if pkg.Upgrade.Breaking {
				bc = &BreakingChange{VersionChange: c, Why: v.Version + " is marked breaking", Note: pkg.Upgrade.Note}
				break
			}
			if bc == nil && sv.Major() != lo.Major() && pkg.Upgrade.Note != "" {
				bc = &BreakingChange{VersionChange: c, Note: pkg.Upgrade.Note}
			}
		}
		if lo.Major() != hi.Major() {
			if bc == nil {
				bc = &BreakingChange{VersionChange: c}
			}
			if bc.Why == "" {
				bc.Why = fmt.Sprintf("major version %d -> %d", from.Major(), to.Major())
			}
		}
		if bc != nil && bc.Why != "" {
			out = append(out, *bc)
		}
	}
	return out, nil
}

// notBelow narrows an app's version constraint so that an upgrade never picks
// a version lower than the locked one. Exact pins (=X) are the user's choice
// and stay as they are; a constraint the locked version no longer satisfies
// (edited by hand) is left alone for the resolver to report.
func notBelow(constraint, locked string) string {
	if locked == "" || strings.HasPrefix(constraint, "=") {
		return constraint
	}
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return constraint
	}
	v, err := semver.NewVersion(locked)
	if err != nil || !c.Check(v) {
		return constraint
	}
	return constraint + ", >=" + locked
}

// channelVersion is the version a channel-following app upgrades to: the
// channel's, unless that is lower than the locked one (the app was pinned
// above the channel, then unpinned, or the channel moved back): then it stays.
func channelVersion(channelAt, locked string) string {
	if locked == "" {
		return channelAt
	}
	c, err1 := semver.NewVersion(channelAt)
	l, err2 := semver.NewVersion(locked)
	if err1 == nil && err2 == nil && c.LessThan(l) {
		return locked
	}
	return channelAt
}

// lockedVersion is the app's own locked version, if any.
func lockedVersion(lock *workspace.Lock, app string) string {
	if in, ok := lock.Get("app:" + app); ok {
		return in.Version
	}
	return ""
}
