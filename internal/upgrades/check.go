package upgrades

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/workspace"
)

// State is where an available upgrade stands.
type State string

// States of an available upgrade.
const (
	StateIgnored  State = "ignored"  // policy ignore: listed only
	StateProposed State = "proposed" // a proposal branch waits for a person
	StateWaiting  State = "waiting"  // auto, outside a maintenance window
	StateApplying State = "applying" // auto: committed now, or in flight
	StateRejected State = "rejected" // rejected by a person
	StateHeld     State = "held"     // rolled back; waits for 'berth approve'
)

func (s State) String() string { return string(s) }

// Candidate is a newer version an app's channel or constraint allows, and
// what its policy makes of it.
type Candidate struct {
	App     string
	Package string
	From    string
	To      string
	Channel string
	Policy  Policy
	// Breaking names the breaking boundary crossed and the package's note;
	// "" when the upgrade is not breaking.
	Breaking string
	// Notes are the release notes of the versions crossed (from the index).
	Notes      string
	State      State
	NextWindow time.Time
	Message    string
}

// Check finds, for every app the user installed in snap, the newest version
// its channel or constraint allows (lifecycle's rule: never backwards) and
// decides what its policy does with it at now. Problems are the apps whose
// upgrade settings are wrong or whose catalogs cannot say; the other apps
// are checked.
func Check(ctx context.Context, env *lifecycle.Env, snap *workspace.Snapshot, records *Records, now time.Time) ([]Candidate, []error) {
	return check(ctx, env, snap, records, now, nil)
}

// memo keeps what a candidate's versions say (breaking or not, release
// notes) while the catalogs do not change: computing it loads the package of
// every version crossed.
type memo struct {
	mu          sync.Mutex
	fingerprint string
	m           map[string][2]string
}

func (m *memo) get(fingerprint, key string) ([2]string, bool) {
	if m == nil {
		return [2]string{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fingerprint != fingerprint {
		m.fingerprint, m.m = fingerprint, map[string][2]string{}
	}
	v, ok := m.m[key]
	return v, ok
}

func (m *memo) put(key string, v [2]string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[key] = v
}

func check(ctx context.Context, env *lifecycle.Env, snap *workspace.Snapshot, records *Records, now time.Time, mm *memoFor) ([]Candidate, []error) {
	var out []Candidate
	var problems []error
	names := make([]string, 0, len(snap.Apps))
	for n := range snap.Apps {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		e := snap.Apps[n]
		if e.Err != nil {
			var se *workspace.UpgradeSettingsError
			if errors.As(e.Err, &se) {
				problems = append(problems, e.Err)
			}
			continue
		}
		a := e.App
		if a == nil || a.Shared {
			continue
		}
		in, ok := snap.Lock.Get("app:" + n)
		if !ok {
			continue
		}
		to, err := env.UpgradeAvailable(ctx, a, in.Version)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if to == "" {
			continue
		}
		pol, err := PolicyFor(&snap.Config, a)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		c := Candidate{App: n, Package: a.Package, From: in.Version, To: to, Channel: a.Channel, Policy: pol}
		if a.Version != "" {
			c.Channel = a.Version
		} else if c.Channel == "" {
			c.Channel = "stable"
		}
		key := a.Package + " " + c.From + " " + c.To
		if v, ok := mm.get(key); ok {
			c.Breaking, c.Notes = v[0], v[1]
		} else {
			bad, err := env.Breaking(ctx, []lifecycle.VersionChange{{Key: "app:" + n, Package: a.Package, From: c.From, To: c.To}})
			if err != nil {
				problems = append(problems, fmt.Errorf("app %s: %w", n, err))
				continue
			}
			if len(bad) > 0 {
				c.Breaking = bad[0].Why
				if note := strings.TrimSpace(bad[0].Note); note != "" {
					c.Breaking += ": " + note
				}
			}
			c.Notes = releaseNotes(ctx, env, a.Package, c.From, c.To)
			mm.put(key, [2]string{c.Breaking, c.Notes})
		}
		decide(&c, records, now)
		out = append(out, c)
	}
	return out, problems
}

// memoFor is a memo for catalogs of one fingerprint; nil memoizes nothing.
type memoFor struct {
	m           *memo
	fingerprint string
}

func (f *memoFor) get(key string) ([2]string, bool) {
	if f == nil {
		return [2]string{}, false
	}
	return f.m.get(f.fingerprint, key)
}

func (f *memoFor) put(key string, v [2]string) {
	if f != nil {
		f.m.put(key, v)
	}
}

// decide sets what the policy makes of a candidate at now.
func decide(c *Candidate, records *Records, now time.Time) {
	if h, ok := records.Held(c.App, c.To); ok {
		c.State = StateRejected
		c.Message = "rejected"
		if h.Kind == HoldRolledBack {
			c.State = StateHeld
			c.Message = "rolled back; 'berth approve " + c.App + " " + c.To + "' tries it again"
		}
		if h.Reason != "" {
			c.Message += ": " + h.Reason
		}
		return
	}
	switch {
	case c.Policy.Policy == workspace.PolicyIgnore:
		c.State, c.Message = StateIgnored, "policy ignore ("+c.Policy.Source+")"
	case c.Breaking != "":
		c.State, c.Message = StateProposed, "breaking ("+c.Breaking+"): only proposed, whatever the policy"
	case c.Policy.Policy == workspace.PolicyApprove:
		c.State, c.Message = StateProposed, "policy approve ("+c.Policy.Source+")"
	default:
		open, next := c.Policy.Windows.OpenAt(now)
		if open {
			c.State, c.Message = StateApplying, "policy auto ("+c.Policy.Source+"), inside a maintenance window"
			return
		}
		c.State, c.NextWindow = StateWaiting, next
		c.Message = "policy auto (" + c.Policy.Source + "): waits for the next maintenance window"
		if !next.IsZero() {
			c.Message += ", " + next.UTC().Format(time.RFC3339)
		}
	}
}

// releaseNotes lists the description of each version in (from, to], newest
// first, as the catalog's index gives them.
func releaseNotes(ctx context.Context, env *lifecycle.Env, pkg, from, to string) string {
	f, err := env.Catalogs.Find(ctx, pkg)
	if err != nil {
		return ""
	}
	lo, err1 := semver.NewVersion(from)
	hi, err2 := semver.NewVersion(to)
	if err1 != nil || err2 != nil {
		return ""
	}
	var lines []string
	for _, v := range f.Entry.Versions {
		sv, err := semver.NewVersion(v.Version)
		if err != nil || !sv.GreaterThan(lo) || sv.GreaterThan(hi) || strings.TrimSpace(v.Description) == "" {
			continue
		}
		lines = append(lines, v.Version+": "+strings.TrimSpace(v.Description))
	}
	return strings.Join(lines, "\n")
}
