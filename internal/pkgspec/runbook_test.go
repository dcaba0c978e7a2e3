package pkgspec

import (
	"errors"
	"strings"
	"testing"
)

const runbooks = `config:
  - {name: storage, type: size, default: 8Gi}
runbooks:
  - name: connect
    title: Connect
    file: runbooks/connect.md
  - name: resize-storage
    title: Grow the data volume
    parameters:
      - {name: size, type: size, min: 1Gi, max: 1Ti, required: true}
    steps:
      - name: set the new size
        config: {storage: "{{ .params.size }}"}
      - expandVolumes: {statefulSet: "{{ .app.name }}", size: "{{ .params.size }}", timeout: 10m}
`

func TestRunbooksParse(t *testing.T) {
	p := mustParse(t, runbooks)
	doc, _ := p.Runbook("connect")
	run, ok := p.Runbook("resize-storage")
	if !ok || doc.Executable() || !run.Executable() || len(run.Steps) != 2 {
		t.Fatalf("runbooks = %+v", p.Runbooks)
	}
	if a, n := run.Steps[1].Action(); a != "expandVolumes" || n != 1 {
		t.Errorf("step 2 action = %s (%d), want expandVolumes", a, n)
	}
	if got := strings.Join(p.RunbookNames(), ","); got != "connect,resize-storage" {
		t.Errorf("RunbookNames = %s", got)
	}
}

func TestRunbookErrors(t *testing.T) {
	tests := map[string]struct {
		add  string
		want string
	}{
		"two actions":      {"runbooks:\n  - name: x\n    steps: [{deploy: {}, job: {template: j.yaml}}]\n", "runbooks[0].steps[0]: has 2 actions"},
		"no action":        {"runbooks:\n  - name: x\n    steps: [{name: nothing}]\n", "runbooks[0].steps[0]: has 0 actions"},
		"unknown config":   {"runbooks:\n  - name: x\n    steps: [{config: {colour: blue}}]\n", `runbooks[0].steps[0].config.colour: "colour" is not a configuration parameter of demo`},
		"bad template":     {"runbooks:\n  - name: x\n    steps: [{scale: {workload: \"deployment/{{ .app.name \", replicas: \"1\"}}]\n", "runbooks[0].steps[0].scale.workload"},
		"bad workload":     {"runbooks:\n  - name: x\n    steps: [{scale: {workload: pod/x, replicas: \"1\"}}]\n", `"pod/x" is not a workload`},
		"bad timeout":      {"runbooks:\n  - name: x\n    steps: [{deploy: {timeout: soon}}]\n", `runbooks[0].steps[0].deploy.timeout: "soon" is not a positive duration`},
		"incomplete":       {"runbooks:\n  - name: x\n", "runbooks[0]: is incomplete; set file"},
		"bad param type":   {"runbooks:\n  - name: x\n    parameters: [{name: n, type: colour}]\n    steps: [{deploy: {}}]\n", `runbooks[0].parameters[0].type: "colour" is not a parameter type`},
		"bad default":      {"runbooks:\n  - name: x\n    parameters: [{name: n, type: int, default: 9, max: 3}]\n    steps: [{deploy: {}}]\n", "runbooks[0].parameters[0].default: must be at most 3"},
		"duplicate":        {"runbooks:\n  - {name: x, file: a.md}\n  - {name: x, file: b.md}\n", `runbooks[1].name: "x" is declared twice`},
		"check no message": {"runbooks:\n  - name: x\n    checks: [{apiVersion: v1, kind: Secret, name: s}]\n    steps: [{deploy: {}}]\n", "runbooks[0].checks[0]: is incomplete"},
		"file escapes":     {"runbooks:\n  - {name: x, file: ../x.md}\n", `runbooks[0].file: "../x.md" leaves the package`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parse(t, "config: [{name: storage, type: size}]\n"+tc.add)
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRunbookCheckParams(t *testing.T) {
	p := mustParse(t, runbooks)
	r, _ := p.Runbook("resize-storage")
	got, err := r.CheckParams(map[string]any{"size": "16Gi"}, nil)
	if err != nil || got["size"] != "16Gi" {
		t.Fatalf("CheckParams(16Gi) = %v, %v", got, err)
	}
	tests := map[string]struct {
		values map[string]any
		want   string
	}{
		"too large": {map[string]any{"size": "2Ti"}, `parameter "size": must be at most 1Ti (got 2Ti)`},
		"not size":  {map[string]any{"size": "big"}, `parameter "size": must be a size`},
		"missing":   {nil, `parameter "size": is required`},
		"unknown":   {map[string]any{"size": "2Gi", "colour": "red"}, `parameter "colour": is not a parameter of runbook resize-storage; its parameters: size`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := r.CheckParams(tc.values, nil)
			var ce *ParamsError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
