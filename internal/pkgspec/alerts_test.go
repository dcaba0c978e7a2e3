package pkgspec

import (
	"strings"
	"testing"
)

const alertsBase = `runbooks:
  - {name: restart, file: runbooks/restart.md}
`

func TestAlertsAndPanelsParse(t *testing.T) {
	p := mustParse(t, alertsBase+`alerts:
  - name: DemoDown
    expr: sum(up{job="demo", namespace="{{ .Namespace }}"}) == 0
    for: 5m
    severity: critical
    summary: demo is down
    runbook: restart
panels:
  - {title: Requests, query: 'sum(rate(http_requests_total[5m]))', unit: ops}
`)
	if len(p.Alerts) != 1 || p.Alerts[0].Runbook != "restart" || p.Alerts[0].For != "5m" {
		t.Errorf("alerts = %+v", p.Alerts)
	}
	if len(p.Panels) != 1 || p.Panels[0].Unit != "ops" {
		t.Errorf("panels = %+v", p.Panels)
	}
}

func TestAlertErrorsNameTheField(t *testing.T) {
	alert := func(fields string) string {
		return alertsBase + "alerts:\n  - {" + fields + "}\n"
	}
	ok := "name: DemoDown, expr: up == 0, severity: warning, summary: down"
	tests := map[string]struct {
		add  string
		want string
	}{
		"unknown runbook": {alert(ok + ", runbook: reboot"), `alerts[0].runbook: names runbook "reboot", which the package does not declare; use one of restart`},
		"bad promql":      {alert("name: A, expr: 'sum(rate(x[5m])', severity: info, summary: s"), `alerts[0].expr: is not valid PromQL: unclosed "("`},
		"dangling op":     {alert("name: A, expr: 'up ==', severity: info, summary: s"), `alerts[0].expr: is not valid PromQL: ends with the operator "=="`},
		"open string":     {alert(`name: A, expr: 'up{job="x}', severity: info, summary: s`), `alerts[0].expr: is not valid PromQL: unterminated string`},
		"bad severity":    {alert("name: A, expr: up, severity: page, summary: s"), `alerts[0].severity: "page" is not a severity; use one of critical, warning, info`},
		"bad for":         {alert(ok + ", for: 5 minutes"), `alerts[0].for: "5 minutes" is not a duration`},
		"bad name":        {alert("name: demo-down, expr: up, severity: info, summary: s"), `alerts[0].name: "demo-down" is not a valid alert name`},
		"no summary":      {alert("name: A, expr: up, severity: info"), `alerts[0].summary: is missing`},
		"duplicate":       {alertsBase + "alerts:\n  - {" + ok + "}\n  - {" + ok + "}\n", `alerts[1].name: "DemoDown" is declared twice`},
		"unknown field":   {alert(ok + ", severty: info"), "severty"},
		"panel unit":      {"panels: [{title: T, query: up, unit: furlongs}]\n", `panels[0].unit: "furlongs" is not a unit`},
		"panel query":     {"panels: [{title: T, query: 'rate(x[5m]'}]\n", `panels[0].query: is not valid PromQL`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parse(t, tc.add)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "demo/package.yaml:") {
				t.Errorf("error %v does not name the file", err)
			}
		})
	}
}
