package runbook

import (
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/pkgspec"
)

// run is one run in progress.
type run struct {
	env  *lifecycle.Env
	k    *kube
	inst *lifecycle.InstalledApp
	rec  *Record
	// cleanup undoes what lives only as long as the run (its Secrets).
	cleanup []func(ctx context.Context) error
}

func (r *run) app() string { return r.inst.App.Name }
func (r *run) ns() string  { return r.inst.App.Namespace }

// result is what a step did, and on failure what state it left and how to
// go on.
type result struct {
	detail  []string
	commits []string
	err     error
	state   string
	next    string
}

// step is a step with its templates rendered.
type step struct {
	name, action string
	plan         func(ctx context.Context, r *run) []string
	exec         func(ctx context.Context, r *run) result
	// preflight, when set, finds what would make the step fail before any
	// step runs (a claim that cannot grow, a workload that does not exist).
	preflight func(ctx context.Context, r *run) error
}

const defaultTimeout = 5 * time.Minute

func timeout(s string) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return defaultTimeout
}

// prepare renders every step's templates (and reads its Job manifests), so a
// template that does not render fails before anything changes.
func prepare(rb pkgspec.Runbook, files fs.FS, data map[string]any) ([]step, error) {
	var out []step
	for i, s := range rb.Steps {
		action, _ := s.Action()
		field := fmt.Sprintf("runbook %s step %d (%s)", rb.Name, i+1, action)
		var st step
		var err error
		switch action {
		case "config":
			st, err = configStep(field, s.Config, data)
		case "deploy":
			st = deployStep(timeout(s.Deploy.Timeout))
		case "job":
			st, err = jobStep(field, s.Job, files, data)
		case "scale":
			st, err = scaleStep(field, s.Scale, data)
		case "expandVolumes":
			st, err = expandStep(field, s.ExpandVolumes, data)
		case "secret":
			st, err = secretStep(field, s.Secret, data)
		default:
			err = fmt.Errorf("%s: no action", field)
		}
		if err != nil {
			return nil, err
		}
		st.action = action
		if s.Name != "" {
			st.name = s.Name
		}
		out = append(out, st)
	}
	return out, nil
}

func configStep(field string, set map[string]string, data map[string]any) (step, error) {
	values := map[string]any{}
	var shown []string
	for _, k := range sortedKeys(set) {
		v, err := render(field+" "+k, set[k], data)
		if err != nil {
			return step{}, err
		}
		values[k] = v
		shown = append(shown, k)
	}
	name := "set " + strings.Join(shown, ", ")
	describe := func(r *run) []string {
		var out []string
		for _, k := range shown {
			v := fmt.Sprint(values[k])
			if q, ok := r.inst.Package.Param(k); ok && q.IsSecret() {
				v = "(secret)"
			}
			out = append(out, fmt.Sprintf("%s: %v -> %s", k, shownConfig(r, k), v))
		}
		return out
	}
	return step{
		name: name,
		plan: func(ctx context.Context, r *run) []string {
			return append(describe(r), "commit the configuration (not deployed by this step)")
		},
		exec: func(ctx context.Context, r *run) result {
			res, err := r.env.Config(ctx, lifecycle.ConfigOptions{App: r.app(), Values: values})
			if err != nil {
				return result{err: err, state: "Nothing was committed by this step: a configuration change that fails writes nothing.",
					next: "Fix the cause and run the runbook again."}
			}
			out := result{detail: describe(r)}
			if res.Committed {
				head, err := r.env.Head(ctx)
				if err != nil {
					return result{err: err, state: "The configuration was committed.", next: "Check the workspace with git log."}
				}
				out.commits = []string{head}
			} else {
				out.detail = append(out.detail, "the configuration already held these values: no commit")
			}
			return out
		},
	}, nil
}

func shownConfig(r *run, k string) any {
	if v, ok := r.inst.Config[k]; ok {
		return v
	}
	return "(secret)"
}

func deployStep(d time.Duration) step {
	return step{
		name: "deploy and wait until healthy",
		plan: func(ctx context.Context, r *run) []string {
			return []string{fmt.Sprintf("deploy %s as the workspace then holds it, and wait up to %s for it to be healthy", r.app(), d)}
		},
		exec: func(ctx context.Context, r *run) result {
			if err := r.deploy(ctx, d); err != nil {
				return result{err: err, state: "The workspace holds the run's changes; the cluster has them in part and the app is not healthy.",
					next: fmt.Sprintf("See why with 'berth status %[1]s' and 'berth events %[1]s'; fix the cause and run 'berth deploy %[1]s', or undo the commits with 'berth rollback %[1]s'.", r.app())}
			}
			return result{detail: []string{r.app() + " deployed and healthy"}}
		},
	}
}

// deploy deploys the app as the workspace holds it, waiting for health.
func (r *run) deploy(ctx context.Context, d time.Duration) error {
	_, err := r.env.Deploy(ctx, lifecycle.DeployOptions{Apps: []string{r.app()}, Timeout: d})
	return err
}

func jobStep(field string, a *pkgspec.JobAction, files fs.FS, data map[string]any) (step, error) {
	text, err := fs.ReadFile(files, a.Template)
	if err != nil {
		return step{}, fmt.Errorf("%s: reading %s: %w", field, a.Template, err)
	}
	manifest, err := render(field+" "+a.Template, string(text), data)
	if err != nil {
		return step{}, err
	}
	job := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &job.Object); err != nil {
		return step{}, fmt.Errorf("%s: %s is not a YAML manifest: %w", field, a.Template, err)
	}
	if job.GetAPIVersion() != "batch/v1" || job.GetKind() != "Job" || job.GetName() == "" {
		return step{}, fmt.Errorf("%s: %s must hold one batch/v1 Job with a name, not %s %s", field, a.Template, job.GetAPIVersion(), job.GetKind())
	}
	d := timeout(a.Timeout)
	name := "job/" + job.GetName()
	return step{
		name: "run " + name,
		plan: func(ctx context.Context, r *run) []string {
			return []string{fmt.Sprintf("create %s from %s and wait up to %s for it to complete", name, a.Template, d)}
		},
		exec: func(ctx context.Context, r *run) result {
			detail, err := r.k.runJob(ctx, r, job.DeepCopy(), d)
			if err != nil {
				return result{detail: detail, err: err,
					state: fmt.Sprintf("%s did not complete; it is kept in namespace %s with its pods, for their logs.", name, r.ns()),
					next:  fmt.Sprintf("Read its logs (kubectl -n %s logs %s), fix the cause, delete the Job (kubectl -n %s delete %s) and run the runbook again.", r.ns(), name, r.ns(), name)}
			}
			return result{detail: detail}
		},
	}, nil
}

func scaleStep(field string, a *pkgspec.ScaleAction, data map[string]any) (step, error) {
	workload, err := render(field+" workload", a.Workload, data)
	if err != nil {
		return step{}, err
	}
	rs, err := render(field+" replicas", a.Replicas, data)
	if err != nil {
		return step{}, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(rs), 10, 32)
	if err != nil || n < 0 {
		return step{}, fmt.Errorf("%s: replicas %q is not a number of replicas", field, rs)
	}
	kind, name, _ := strings.Cut(workload, "/")
	if (kind != "statefulset" && kind != "deployment") || name == "" {
		return step{}, fmt.Errorf("%s: workload %q is not deployment/NAME or statefulset/NAME", field, workload)
	}
	d := timeout(a.Timeout)
	return step{
		name: fmt.Sprintf("scale %s to %d", workload, n),
		plan: func(ctx context.Context, r *run) []string {
			cur, err := r.k.replicas(ctx, r.ns(), kind, name)
			if err != nil {
				return []string{err.Error()}
			}
			return []string{fmt.Sprintf("%s: %d -> %d replicas, waiting up to %s until they are ready", workload, cur, n, d)}
		},
		preflight: func(ctx context.Context, r *run) error {
			_, err := r.k.replicas(ctx, r.ns(), kind, name)
			return err
		},
		exec: func(ctx context.Context, r *run) result {
			from, err := r.k.scale(ctx, r.ns(), kind, name, int32(n), d)
			if err != nil {
				return result{err: err,
					state: fmt.Sprintf("%s is set to %d replicas and they are not all ready.", workload, n),
					next:  fmt.Sprintf("See why with 'berth status %[1]s' and 'berth events %[1]s'. 'berth deploy %[1]s' sets the replicas the workspace holds again.", r.app())}
			}
			return result{detail: []string{fmt.Sprintf("%s: %d -> %d replicas, ready", workload, from, n)}}
		},
	}, nil
}

func expandStep(field string, a *pkgspec.ExpandVolumesAction, data map[string]any) (step, error) {
	sts, err := render(field+" statefulSet", a.StatefulSet, data)
	if err != nil {
		return step{}, err
	}
	size, err := render(field+" size", a.Size, data)
	if err != nil {
		return step{}, err
	}
	x := expansion{statefulSet: sts, claim: a.Claim, size: size, timeout: timeout(a.Timeout)}
	return step{
		name: fmt.Sprintf("expand the volumes of statefulset/%s to %s", sts, size),
		plan: func(ctx context.Context, r *run) []string {
			p, err := r.k.planExpansion(ctx, r.ns(), x)
			if err != nil {
				return []string{err.Error()}
			}
			return p.describe()
		},
		preflight: func(ctx context.Context, r *run) error {
			_, err := r.k.planExpansion(ctx, r.ns(), x)
			return err
		},
		exec: func(ctx context.Context, r *run) result { return r.k.expand(ctx, r, x) },
	}, nil
}

func secretStep(field string, a *pkgspec.SecretAction, data map[string]any) (step, error) {
	name, err := render(field+" name", a.Name, data)
	if err != nil {
		return step{}, err
	}
	values := map[string]string{}
	for _, k := range sortedKeys(a.Data) {
		if values[k], err = render(field+" data."+k, a.Data[k], data); err != nil {
			return step{}, err
		}
	}
	keys := strings.Join(sortedKeys(values), ", ")
	return step{
		name: "create secret/" + name + " for the run",
		plan: func(ctx context.Context, r *run) []string {
			return []string{fmt.Sprintf("create secret/%s (keys %s), deleted when the run ends", name, keys)}
		},
		exec: func(ctx context.Context, r *run) result {
			if err := r.k.createSecret(ctx, r, name, values); err != nil {
				return result{err: err, state: "Nothing was changed by this step.", next: "Fix the cause and run the runbook again."}
			}
			r.cleanup = append(r.cleanup, func(ctx context.Context) error { return r.k.deleteSecret(ctx, r.ns(), name) })
			return result{detail: []string{fmt.Sprintf("created secret/%s (keys %s) for the run", name, keys)}}
		},
	}, nil
}
