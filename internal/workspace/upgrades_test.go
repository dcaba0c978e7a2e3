package workspace

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadUpgradeSettings(t *testing.T) {
	good := testConfig + `upgrades:
  interval: 5m
  default: {policy: approve}
  windows:
  - {name: nightly, days: [mon, Friday], start: "02:00", duration: 3h, timeZone: Europe/Paris}
  rules:
  - {apps: "web-*", policy: auto, windows: [nightly], timeout: 10m}
  - {package: p, policy: ignore}
  notifications:
  - {name: ops, format: slack, urlEnv: OPS_HOOK, events: [proposed, rolledBack]}
`
	fsys := fstest.MapFS{
		ConfigFile:            {Data: []byte(good)},
		"apps/web-1/app.yaml": {Data: []byte(appFile("web-1") + "upgrade: {policy: auto, rollback: manual}\n")},
		"apps/other/app.yaml": {Data: []byte(appFile("other"))},
	}
	s, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	u := s.Config.Upgrades
	if u == nil || u.Interval.Duration != 5*time.Minute || u.Windows[0].Duration.Duration != 3*time.Hour || u.Rules[0].Timeout.Duration != 10*time.Minute {
		t.Fatalf("upgrades = %+v", u)
	}
	if a := s.Apps["web-1"].App; a.Upgrade == nil || a.Upgrade.Policy != PolicyAuto || a.Upgrade.Rollback != RollbackManual {
		t.Errorf("app.yaml upgrade = %+v", a.Upgrade)
	}
	if got := s.UnmatchedRules(); len(got) != 0 {
		t.Errorf("unmatched rules %v, want none", got)
	}
}

func TestLoadRejectsBadUpgradeSettings(t *testing.T) {
	tests := map[string]struct {
		upgrades string
		want     string
	}{
		"unknown policy":  {"rules: [{apps: a, policy: sometimes}]", `upgrades.rules[0].policy: "sometimes" is not a policy`},
		"bad time zone":   {`windows: [{start: "02:00", duration: 1h, timeZone: Mars/Olympus}]`, `upgrades.windows[0].timeZone: "Mars/Olympus" is not a time zone`},
		"zero duration":   {`windows: [{start: "02:00", duration: 0s}]`, "upgrades.windows[0].duration: must be a positive duration"},
		"bad start":       {`windows: [{start: "2am", duration: 1h}]`, `upgrades.windows[0].start: "2am" is not a time of day`},
		"bad day":         {`windows: [{start: "02:00", duration: 1h, days: [someday]}]`, `upgrades.windows[0].days[0]: "someday" is not a day`},
		"unknown window":  {`default: {windows: [night]}`, `upgrades.default.windows[0]: no window is named "night"`},
		"bad glob":        {`rules: [{apps: "[", policy: auto}]`, `upgrades.rules[0].apps: "[" is not a glob`},
		"empty rule":      {`rules: [{policy: auto}]`, "upgrades.rules[0]: give apps"},
		"url in the file": {`notifications: [{name: ops}]`, "upgrades.notifications[0]: give the webhook URL's source"},
		"unknown event":   {`notifications: [{name: ops, urlEnv: X, events: [exploded]}]`, `upgrades.notifications[0].events[0]: "exploded" is not an event`},
		"unknown field":   {`rules: [{apps: a, polcy: auto}]`, `unknown field "polcy"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{ConfigFile: {Data: []byte(testConfig + "upgrades:\n  " + tc.upgrades + "\n")}}
			_, err := Load(fsys)
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.File != ConfigFile || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load error = %v, want an InvalidError of %s containing %q", err, ConfigFile, tc.want)
			}
		})
	}
}

func TestLoadRejectsABadAppUpgradeOnlyForThatApp(t *testing.T) {
	fsys := fstest.MapFS{
		ConfigFile:        {Data: []byte(testConfig)},
		"apps/a/app.yaml": {Data: []byte(appFile("a") + "upgrade: {policy: always}\n")},
		"apps/b/app.yaml": {Data: []byte(appFile("b"))},
	}
	s, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var se *UpgradeSettingsError
	if err := s.Apps["a"].Err; !errors.As(err, &se) || !strings.Contains(err.Error(), `apps/a/app.yaml: upgrade.policy: "always" is not a policy`) {
		t.Errorf("app a error = %v", err)
	}
	if s.Apps["b"].Err != nil {
		t.Errorf("app b error = %v", s.Apps["b"].Err)
	}
}

func TestUnmatchedRulesNameTheRule(t *testing.T) {
	fsys := fstest.MapFS{
		ConfigFile:        {Data: []byte(testConfig + "upgrades:\n  rules: [{apps: \"web-*\", policy: auto}, {apps: \"a*\", policy: auto}]\n")},
		"apps/a/app.yaml": {Data: []byte(appFile("a"))},
	}
	s, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`berth.yaml: upgrades.rules[0] (apps "web-*") matches no app`}
	if diff := cmp.Diff(want, s.UnmatchedRules()); diff != "" {
		t.Error(diff)
	}
}
