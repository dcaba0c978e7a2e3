package incident

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	berthv1 "berth.dev/berth/api/v1alpha1"
)

// AlertmanagerPayload is the body of Alertmanager's webhook (version 4).
type AlertmanagerPayload struct {
	Version string  `json:"version"`
	Status  string  `json:"status"`
	Alerts  []Alert `json:"alerts"`
}

// Alert is one alert of an Alertmanager notification.
type Alert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
}

// LabelAlertApp is the alert label naming the app an alert is about; alerts
// without it belong to the app "cluster".
const LabelAlertApp = "berth_app"

var alertName = regexp.MustCompile(`[^a-z0-9-]+`)

// Validate checks what berth needs of a notification; its error names the
// field, never a value (labels and annotations may hold secrets).
func (p *AlertmanagerPayload) Validate() error {
	if p.Version != "4" {
		return errors.New(`version: want "4" (Alertmanager's webhook payload)`)
	}
	if len(p.Alerts) == 0 {
		return errors.New("alerts: empty")
	}
	for i, a := range p.Alerts {
		switch {
		case a.Status != "firing" && a.Status != "resolved":
			return fmt.Errorf("alerts[%d].status: want firing or resolved", i)
		case a.Labels["alertname"] == "":
			return fmt.Errorf("alerts[%d].labels.alertname: missing", i)
		case a.StartsAt.IsZero():
			return fmt.Errorf("alerts[%d].startsAt: missing", i)
		}
	}
	return nil
}

// AlertCause is the cause of an alert, for incidents in namespace.
func AlertCause(a Alert, namespace string) Cause {
	app := a.Labels[LabelAlertApp]
	if app == "" {
		app = "cluster"
	}
	name := strings.Trim(alertName.ReplaceAllString(strings.ToLower(a.Labels["alertname"]), "-"), "-")
	msg := a.Annotations["summary"]
	if msg == "" {
		msg = a.Labels["alertname"]
	}
	if sev := a.Labels["severity"]; sev != "" {
		msg = sev + ": " + msg
	}
	if rb := a.Annotations["runbook"]; rb != "" {
		msg += " (runbook: " + rb + ")"
	}
	return Cause{App: app, Namespace: namespace, Cause: berthv1.CauseAlert, Object: "alert/" + name,
		Message: msg, Fingerprint: a.Fingerprint + "@" + a.StartsAt.UTC().Format(time.RFC3339)}
}
