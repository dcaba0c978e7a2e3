package upgrades

import (
	"testing"
	"time"

	"berth.dev/berth/internal/workspace"
)

func TestPolicyForMostSpecificWins(t *testing.T) {
	d := func(s string) *workspace.Duration {
		v, _ := time.ParseDuration(s)
		return &workspace.Duration{Duration: v}
	}
	cfg := &workspace.Config{Upgrades: &workspace.UpgradesConfig{
		Default: workspace.UpgradeSettings{Policy: workspace.PolicyIgnore},
		Windows: []workspace.Window{{Name: "night", Start: "02:00", Duration: workspace.Duration{Duration: time.Hour}}, {Name: "day", Start: "12:00", Duration: workspace.Duration{Duration: time.Hour}}},
		Rules: []workspace.UpgradeRule{
			{Apps: "*", UpgradeSettings: workspace.UpgradeSettings{Policy: workspace.PolicyApprove}},
			{Package: "redis", UpgradeSettings: workspace.UpgradeSettings{Policy: workspace.PolicyAuto, Timeout: d("3m")}},
			{Apps: "web-*", UpgradeSettings: workspace.UpgradeSettings{Policy: workspace.PolicyAuto, Windows: []string{"night"}}},
			{Apps: "web-1", UpgradeSettings: workspace.UpgradeSettings{Policy: workspace.PolicyIgnore}},
		},
	}}
	tests := map[string]struct {
		app      workspace.App
		policy   workspace.UpgradePolicy
		rollback workspace.RollbackPolicy
		timeout  time.Duration
		windows  int
		source   string
	}{
		"exact name beats globs; windows from the next rule setting them": {workspace.App{Name: "web-1", Package: "x"}, workspace.PolicyIgnore, workspace.RollbackManual, DefaultTimeout, 1, "berth.yaml upgrades.rules[3]"},
		"longer glob beats *":       {workspace.App{Name: "web-2", Package: "x"}, workspace.PolicyAuto, workspace.RollbackAuto, DefaultTimeout, 1, "berth.yaml upgrades.rules[2]"},
		"glob beats package":        {workspace.App{Name: "web-3", Package: "redis"}, workspace.PolicyAuto, workspace.RollbackAuto, 3 * time.Minute, 1, "berth.yaml upgrades.rules[2]"},
		"* beats package alone":     {workspace.App{Name: "cache", Package: "redis"}, workspace.PolicyApprove, workspace.RollbackManual, 3 * time.Minute, 2, "berth.yaml upgrades.rules[0]"},
		"app.yaml beats every rule": {workspace.App{Name: "web-1", Package: "x", Upgrade: &workspace.UpgradeSettings{Policy: workspace.PolicyAuto, Windows: []string{"day"}}}, workspace.PolicyAuto, workspace.RollbackAuto, DefaultTimeout, 1, "apps/web-1/app.yaml"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := PolicyFor(cfg, &tc.app)
			if err != nil {
				t.Fatal(err)
			}
			if p.Policy != tc.policy || p.Rollback != tc.rollback || p.Timeout != tc.timeout || len(p.Windows) != tc.windows || p.Source != tc.source {
				t.Errorf("PolicyFor = %+v", p)
			}
		})
	}
}

func TestPolicyForWithoutRulesIsApprove(t *testing.T) {
	p, err := PolicyFor(&workspace.Config{}, &workspace.App{Name: "a", Package: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Policy != workspace.PolicyApprove || p.Rollback != workspace.RollbackManual {
		t.Errorf("PolicyFor = %+v, want approve", p)
	}
}

func TestPolicyForNamesAnUnknownWindowOfAnApp(t *testing.T) {
	_, err := PolicyFor(&workspace.Config{}, &workspace.App{Name: "a", Upgrade: &workspace.UpgradeSettings{Windows: []string{"nope"}}})
	if err == nil || err.Error() != `apps/a/app.yaml: upgrade.windows: no window is named "nope" in upgrades.windows of berth.yaml` {
		t.Errorf("err = %v", err)
	}
}
