package workspace

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// UpgradePolicy is how new catalog versions reach an app (docs/upgrades.md).
type UpgradePolicy string

// Upgrade policies.
const (
	// PolicyAuto commits the upgrade to the followed branch inside a
	// maintenance window, and the controller deploys it.
	PolicyAuto UpgradePolicy = "auto"
	// PolicyApprove proposes the upgrade as a branch and waits for a person.
	PolicyApprove UpgradePolicy = "approve"
	// PolicyIgnore does nothing; the version is still listed as available.
	PolicyIgnore UpgradePolicy = "ignore"
)

func (p UpgradePolicy) String() string { return string(p) }

// RollbackPolicy says what happens to an upgrade that does not become healthy.
type RollbackPolicy string

// Rollback policies.
const (
	// RollbackAuto reverts the upgrade by a commit; the default for auto upgrades.
	RollbackAuto RollbackPolicy = "auto"
	// RollbackManual leaves it to a person ('berth rollback').
	RollbackManual RollbackPolicy = "manual"
)

func (r RollbackPolicy) String() string { return string(r) }

// Duration is a duration written as Go spells it ("90m", "2h30m").
type Duration struct{ time.Duration }

// UnmarshalJSON reads "2h30m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"2h\" or \"90m\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"2h\" or \"90m\", got %q", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UpgradeSettings are how upgrades reach an app: in berth.yaml the defaults
// and each rule, in app.yaml the app's own (docs/upgrades.md).
type UpgradeSettings struct {
	Policy   UpgradePolicy  `json:"policy,omitempty"`
	Rollback RollbackPolicy `json:"rollback,omitempty"`
	// Timeout bounds how long an upgrade may take to become healthy before
	// it is rolled back.
	Timeout *Duration `json:"timeout,omitempty"`
	// Windows name the maintenance windows of berth.yaml auto upgrades land
	// in; every window when empty.
	Windows []string `json:"windows,omitempty"`
}

// UpgradeRule applies settings to the apps whose name matches the glob Apps
// and (when set) whose package is Package.
type UpgradeRule struct {
	Apps    string `json:"apps,omitempty"`
	Package string `json:"package,omitempty"`
	UpgradeSettings
}

// Window is a maintenance window: on each of Days, from Start (HH:MM) for
// Duration, in TimeZone (IANA name; UTC when empty).
type Window struct {
	Name     string   `json:"name,omitempty"`
	Days     []string `json:"days,omitempty"`
	Start    string   `json:"start"`
	Duration Duration `json:"duration"`
	TimeZone string   `json:"timeZone,omitempty"`
}

// NotificationFormat is the JSON a notification webhook receives.
type NotificationFormat string

// Notification formats.
const (
	FormatSlack NotificationFormat = "slack"
	FormatJSON  NotificationFormat = "json"
)

// Notification is a webhook told about upgrades. Its URL is a secret: it is
// read from the environment variable URLEnv or from the Secret URLSecret (in
// the controller's Workspace namespace), never written in berth.yaml.
type Notification struct {
	Name      string             `json:"name"`
	Format    NotificationFormat `json:"format,omitempty"`
	URLEnv    string             `json:"urlEnv,omitempty"`
	URLSecret *SecretKeyRef      `json:"urlSecret,omitempty"`
	// Events it is told about: proposed, applied, failed, rolledBack; all
	// when empty.
	Events []string `json:"events,omitempty"`
}

// SecretKeyRef is a key of a Secret.
type SecretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// UpgradesConfig is the upgrades section of berth.yaml.
type UpgradesConfig struct {
	// Interval between polls of the catalogs by the controller.
	Interval      *Duration       `json:"interval,omitempty"`
	Default       UpgradeSettings `json:"default,omitempty"`
	Rules         []UpgradeRule   `json:"rules,omitempty"`
	Windows       []Window        `json:"windows,omitempty"`
	Notifications []Notification  `json:"notifications,omitempty"`
}

// Notification events.
var notificationEvents = []string{"proposed", "applied", "failed", "rolledBack"}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Weekday parses a day of a window: mon, tue... or monday, tuesday...
func Weekday(s string) (time.Weekday, bool) {
	s = strings.ToLower(s)
	if d, ok := weekdays[s]; ok {
		return d, true
	}
	for _, d := range weekdays {
		if s == strings.ToLower(d.String()) {
			return d, true
		}
	}
	return 0, false
}

// ParseClock parses HH:MM into minutes after midnight.
func ParseClock(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, false
	}
	return hh*60 + mm, true
}

// validate checks the upgrades section; field is its path in the file.
func (u *UpgradesConfig) validate(field string) error {
	if u.Interval != nil && u.Interval.Duration <= 0 {
		return fmt.Errorf("%s.interval: must be a positive duration such as \"5m\"", field)
	}
	names := map[string]bool{}
	for i, w := range u.Windows {
		f := fmt.Sprintf("%s.windows[%d]", field, i)
		if err := w.validate(f); err != nil {
			return err
		}
		if w.Name != "" {
			if names[w.Name] {
				return fmt.Errorf("%s.name: two windows are named %q", f, w.Name)
			}
			names[w.Name] = true
		}
	}
	if err := u.Default.validate(field+".default", names); err != nil {
		return err
	}
	for i, r := range u.Rules {
		f := fmt.Sprintf("%s.rules[%d]", field, i)
		if r.Apps == "" && r.Package == "" {
			return fmt.Errorf("%s: give apps (a glob of app names) or package, or both", f)
		}
		if _, err := path.Match(r.Apps, ""); r.Apps != "" && err != nil {
			return fmt.Errorf("%s.apps: %q is not a glob (use * and ? and [a-z])", f, r.Apps)
		}
		if err := r.validate(f, names); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for i, n := range u.Notifications {
		f := fmt.Sprintf("%s.notifications[%d]", field, i)
		switch {
		case n.Name == "":
			return fmt.Errorf("%s.name: required", f)
		case seen[n.Name]:
			return fmt.Errorf("%s.name: two notifications are named %q", f, n.Name)
		case n.Format != "" && n.Format != FormatSlack && n.Format != FormatJSON:
			return fmt.Errorf("%s.format: %q is not a format; use slack or json", f, n.Format)
		case (n.URLEnv == "") == (n.URLSecret == nil):
			return fmt.Errorf("%s: give the webhook URL's source, urlEnv (an environment variable) or urlSecret (a Secret's name and key), not both; never the URL itself", f)
		case n.URLSecret != nil && (n.URLSecret.Name == "" || n.URLSecret.Key == ""):
			return fmt.Errorf("%s.urlSecret: needs name and key", f)
		}
		seen[n.Name] = true
		for j, ev := range n.Events {
			if !slices.Contains(notificationEvents, ev) {
				return fmt.Errorf("%s.events[%d]: %q is not an event; use %s", f, j, ev, strings.Join(notificationEvents, ", "))
			}
		}
	}
	return nil
}

func (w *Window) validate(field string) error {
	if _, ok := ParseClock(w.Start); !ok {
		return fmt.Errorf("%s.start: %q is not a time of day; write it as HH:MM (\"02:30\")", field, w.Start)
	}
	if w.Duration.Duration <= 0 {
		return fmt.Errorf("%s.duration: must be a positive duration such as \"2h\"", field)
	}
	if w.Duration.Duration > 7*24*time.Hour {
		return fmt.Errorf("%s.duration: %s is longer than a week", field, w.Duration.Duration)
	}
	if _, err := time.LoadLocation(w.TimeZone); err != nil {
		return fmt.Errorf("%s.timeZone: %q is not a time zone; use an IANA name such as \"Europe/Paris\" or \"UTC\"", field, w.TimeZone)
	}
	for i, d := range w.Days {
		if _, ok := Weekday(d); !ok {
			return fmt.Errorf("%s.days[%d]: %q is not a day; use mon, tue, wed, thu, fri, sat or sun", field, i, d)
		}
	}
	return nil
}

// validate checks settings; windows are the names berth.yaml defines (nil:
// not known here, as in app.yaml, checked when the two are joined).
func (s *UpgradeSettings) validate(field string, windows map[string]bool) error {
	switch s.Policy {
	case "", PolicyAuto, PolicyApprove, PolicyIgnore:
	default:
		return fmt.Errorf("%s.policy: %q is not a policy; use auto, approve or ignore", field, s.Policy)
	}
	switch s.Rollback {
	case "", RollbackAuto, RollbackManual:
	default:
		return fmt.Errorf("%s.rollback: %q is not a rollback policy; use auto or manual", field, s.Rollback)
	}
	if s.Timeout != nil && s.Timeout.Duration <= 0 {
		return fmt.Errorf("%s.timeout: must be a positive duration such as \"10m\"", field)
	}
	for i, w := range s.Windows {
		if windows != nil && !windows[w] {
			return fmt.Errorf("%s.windows[%d]: no window is named %q in upgrades.windows of %s", field, i, w, ConfigFile)
		}
	}
	return nil
}

// UpgradeSettingsError is a wrong upgrade setting of an app.yaml: only the
// upgrades of that app are affected.
type UpgradeSettingsError struct{ Err error }

func (e *UpgradeSettingsError) Error() string { return e.Err.Error() }
func (e *UpgradeSettingsError) Unwrap() error { return e.Err }

// UnmatchedRules names the upgrade rules of berth.yaml that match no app of
// the snapshot: a glob that matches nothing is most often a typo. They are
// not load errors, so a rule may be written before its app is installed.
func (s *Snapshot) UnmatchedRules() []string {
	if s.Config.Upgrades == nil {
		return nil
	}
	var out []string
	for i, r := range s.Config.Upgrades.Rules {
		matched := false
		for _, a := range s.Apps {
			if a.App != nil && r.Matches(a.App) {
				matched = true
				break
			}
		}
		if !matched {
			what := []string{}
			if r.Apps != "" {
				what = append(what, fmt.Sprintf("apps %q", r.Apps))
			}
			if r.Package != "" {
				what = append(what, fmt.Sprintf("package %q", r.Package))
			}
			out = append(out, fmt.Sprintf("%s: upgrades.rules[%d] (%s) matches no app", ConfigFile, i, strings.Join(what, ", ")))
		}
	}
	return out
}

// Matches reports whether the rule applies to app.
func (r *UpgradeRule) Matches(a *App) bool {
	if r.Package != "" && r.Package != a.Package {
		return false
	}
	if r.Apps != "" {
		ok, _ := path.Match(r.Apps, a.Name)
		return ok
	}
	return true
}
