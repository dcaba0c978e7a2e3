package fleet

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"
	"text/template"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/workspace"
)

// verification is the Job a promotion runs in each cluster of the stage it
// moves an app on from: the stage's own (berth.yaml environments[].verify),
// else the one the app's package defines (package.yaml verify:).
type verification struct {
	job     batchv1.Job
	timeout time.Duration
	// origin says where the Job comes from, for errors.
	origin string
}

// verificationOf returns the verification of app a's promotion from stage,
// nil when neither the stage nor the app's package defines one.
func verificationOf(ctx context.Context, env *lifecycle.Env, a *workspace.App, stage workspace.Environment) (*verification, error) {
	if stage.Verify != nil {
		return stageVerification(env.WS, a, stage)
	}
	inst, err := env.Installed(ctx, a.Name)
	if err != nil {
		return nil, err
	}
	if inst.Package.Verify == nil {
		return nil, nil
	}
	return packageVerification(inst)
}

func stageVerification(ws *workspace.Workspace, a *workspace.App, stage workspace.Environment) (*verification, error) {
	origin := fmt.Sprintf("%s (environment %s's verify.job)", stage.Verify.Job, stage.Name)
	data, err := ws.ReadFile(stage.Verify.Job)
	if err != nil {
		return nil, fmt.Errorf("%s: environments %s: verify.job: %w", workspace.ConfigFile, stage.Name, err)
	}
	v := &verification{origin: origin, timeout: pkgspec.DefaultVerifyTimeout}
	if err := yaml.UnmarshalStrict(data, &v.job); err != nil || v.job.Kind != "Job" {
		return nil, fmt.Errorf("%s is not a Job manifest: %v", origin, err)
	}
	if v.job.Namespace == "" {
		v.job.Namespace = a.Namespace
	}
	if d, err := time.ParseDuration(stage.Verify.Timeout); err == nil && d > 0 {
		v.timeout = d
	}
	return v, nil
}

// packageVerification renders the package's verification Job template over
// the app's configuration (without its secret parameters), in the app's
// namespace.
func packageVerification(inst *lifecycle.InstalledApp) (*verification, error) {
	pv := inst.Package.Verify
	origin := fmt.Sprintf("%s (package %s %s's verify.job)", pv.Job, inst.Package.Name, inst.Package.Version)
	text, err := fs.ReadFile(inst.Files, pv.Job)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", origin, err)
	}
	t, err := template.New(pv.Job).Option("missingkey=error").Funcs(pkgspec.TemplateFuncs()).Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", origin, err)
	}
	var b bytes.Buffer
	data := map[string]any{
		"app":     map[string]any{"name": inst.App.Name, "namespace": inst.App.Namespace},
		"package": map[string]any{"name": inst.Package.Name, "version": inst.Package.Version},
		"config":  map[string]any(inst.Config),
	}
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("%s: %w", origin, err)
	}
	v := &verification{origin: origin, timeout: pv.TimeoutDuration()}
	if err := yaml.UnmarshalStrict(b.Bytes(), &v.job); err != nil || v.job.APIVersion != "batch/v1" || v.job.Kind != "Job" || v.job.Name == "" {
		return nil, fmt.Errorf("%s must render one batch/v1 Job with a name: %v", origin, err)
	}
	v.job.Namespace = inst.App.Namespace
	return v, nil
}

// nameFor is the Job's name for a source: one Job per source, so a new
// source is verified afresh.
func (v *verification) nameFor(source string) string {
	return strings.TrimRight(truncate(v.job.Name, 50), "-") + "-" + strings.TrimPrefix(source, "sha256:")[:8]
}
