package upgrades

import (
	"fmt"
	"path"
	"strings"
	"time"

	"berth.dev/berth/internal/workspace"
)

// DefaultTimeout is how long an automatic upgrade may take to become healthy
// when no setting says otherwise.
const DefaultTimeout = 10 * time.Minute

// Policy is what applies to one app's upgrades, and where it comes from.
type Policy struct {
	Policy   workspace.UpgradePolicy
	Rollback workspace.RollbackPolicy
	Timeout  time.Duration
	// Windows are the maintenance windows auto upgrades land in; empty means
	// at any time.
	Windows Schedule
	// Source names the setting that decided the policy, for people.
	Source string
}

// setting is one place settings come from, with its rank: higher wins.
type setting struct {
	rank   int
	source string
	s      workspace.UpgradeSettings
}

// PolicyFor returns the upgrade policy of app a under cfg. Each field comes
// from the most specific place that sets it: the app's app.yaml, then the
// rules of berth.yaml naming the app exactly, then those whose glob matches
// it (more literal characters first) or whose package is the app's, then
// upgrades.default; a policy no place sets is approve. Equal ranks: the
// first rule in the file wins.
func PolicyFor(cfg *workspace.Config, a *workspace.App) (Policy, error) {
	var list []setting
	if a.Upgrade != nil {
		list = append(list, setting{1 << 20, path.Join(workspace.AppDir(a.Name), workspace.AppFile), *a.Upgrade})
	}
	u := cfg.Upgrades
	if u == nil {
		u = &workspace.UpgradesConfig{}
	}
	for i, r := range u.Rules {
		if !r.Matches(a) {
			continue
		}
		rank := 0
		switch {
		case r.Apps != "" && !strings.ContainsAny(r.Apps, "*?["):
			rank = 1 << 19
		case r.Apps != "":
			rank = 1<<10 + len(strings.NewReplacer("*", "", "?", "").Replace(r.Apps))
		}
		if r.Package != "" {
			rank += 1 << 9
		}
		list = append(list, setting{rank, fmt.Sprintf("%s upgrades.rules[%d]", workspace.ConfigFile, i), r.UpgradeSettings})
	}
	list = append(list, setting{0, workspace.ConfigFile + " upgrades.default", u.Default})
	// Stable insertion sort by rank, highest first: rules keep file order.
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && list[j].rank > list[j-1].rank; j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
	p := Policy{Policy: workspace.PolicyApprove, Source: "no rule matches (approve)"}
	var windows []string
	policySet, rollbackSet, timeoutSet, windowsSet := false, false, false, false
	for _, st := range list {
		if !policySet && st.s.Policy != "" {
			p.Policy, p.Source, policySet = st.s.Policy, st.source, true
		}
		if !rollbackSet && st.s.Rollback != "" {
			p.Rollback, rollbackSet = st.s.Rollback, true
		}
		if !timeoutSet && st.s.Timeout != nil {
			p.Timeout, timeoutSet = st.s.Timeout.Duration, true
		}
		if !windowsSet && len(st.s.Windows) > 0 {
			windows, windowsSet = st.s.Windows, true
		}
	}
	if !rollbackSet {
		p.Rollback = workspace.RollbackManual
		if p.Policy == workspace.PolicyAuto {
			p.Rollback = workspace.RollbackAuto
		}
	}
	if !timeoutSet {
		p.Timeout = DefaultTimeout
	}
	byName := map[string]workspace.Window{}
	for _, w := range u.Windows {
		byName[w.Name] = w
	}
	if len(windows) == 0 {
		p.Windows = Schedule(u.Windows)
	}
	for _, n := range windows {
		w, ok := byName[n]
		if !ok {
			return p, fmt.Errorf("%s: upgrade.windows: no window is named %q in upgrades.windows of %s", path.Join(workspace.AppDir(a.Name), workspace.AppFile), n, workspace.ConfigFile)
		}
		p.Windows = append(p.Windows, w)
	}
	return p, nil
}
