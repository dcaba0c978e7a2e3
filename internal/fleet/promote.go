package fleet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/placement"
	"berth.dev/berth/internal/workspace"
)

// Upgrades enter the first stage: a new version or configuration of an app
// (berth upgrade, config, build, or an upgrade over the air committing the
// same way) is rendered for the clusters of the first environment and for
// clusters in no environment; clusters of a later stage keep the source
// promoted into them (apps/APP/promotions.yaml) until Promote moves the new
// one on. Nothing else is needed from a caller that changes apps.

// PromoteOptions says what to promote where.
type PromoteOptions struct {
	App string
	// To is the stage to promote into; the stage before it is the source.
	To string
	// ApprovedBy approves a promotion into a stage that requires approval.
	ApprovedBy string
	// Now is the clock soak times are measured with; time.Now when nil.
	Now func() time.Time
}

// Evidence is what one cluster of the source stage showed.
type Evidence struct {
	Cluster      string    `json:"cluster"`
	Health       string    `json:"health"`
	Since        time.Time `json:"since"`
	Revision     string    `json:"revision,omitempty"`
	Verification string    `json:"verification,omitempty"`
}

// PromoteResult is a promotion made.
type PromoteResult struct {
	App      string     `json:"app"`
	From     string     `json:"from"`
	To       string     `json:"to"`
	Source   string     `json:"source"`
	Clusters []string   `json:"clusters"`
	Evidence []Evidence `json:"evidence"`
}

// RefusedError is a promotion whose evidence is missing: it names the app,
// the stage and the cluster that lacks it.
type RefusedError struct {
	App, From, To, Cluster, Reason string
}

func (e *RefusedError) Error() string {
	where := ""
	if e.Cluster != "" {
		where = " cluster " + e.Cluster + ":"
	}
	return fmt.Sprintf("promoting app %s from %s to %s refused:%s %s", e.App, e.From, e.To, where, e.Reason)
}

// Promote moves the app's source running in the stage before opts.To into
// opts.To, as one commit recording the evidence, only when every cluster of
// that stage runs exactly that source healthy (and without drift) for the
// stage's soak time, and its verification Job completed there.
func Promote(ctx context.Context, env *lifecycle.Env, opts PromoteOptions) (*PromoteResult, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	cfg := env.WS.Config
	to, k, ok := cfg.Environment(opts.To)
	if !ok {
		var names []string
		for _, e := range cfg.Environments {
			names = append(names, e.Name)
		}
		return nil, fmt.Errorf("app %s: no stage %q in %s environments (stages: %s)", opts.App, opts.To, workspace.ConfigFile, strings.Join(names, ", "))
	}
	if k == 0 {
		return nil, fmt.Errorf("app %s: %s is the first stage: new versions and configurations enter it by 'berth build', not by promotion", opts.App, to.Name)
	}
	from := cfg.Environments[k-1]
	refuse := func(cluster, format string, args ...any) error {
		return &RefusedError{App: opts.App, From: from.Name, To: to.Name, Cluster: cluster, Reason: fmt.Sprintf(format, args...)}
	}
	if to.RequireApproval && opts.ApprovedBy == "" {
		return nil, refuse("", "stage %s requires approval", to.Name)
	}
	a, err := env.WS.App(opts.App)
	if err != nil {
		return nil, err
	}
	targets, err := placement.Place(cfg.Clusters, a.Name, a.Placement)
	if err != nil {
		return nil, err
	}
	fromClusters, err := env.StageClusters(from.Name)
	if err != nil {
		return nil, err
	}
	toClusters, err := env.StageClusters(to.Name)
	if err != nil {
		return nil, err
	}
	placed := func(in []string) []string {
		var out []string
		for _, t := range targets {
			if slices.Contains(in, t.Cluster) {
				out = append(out, t.Cluster)
			}
		}
		return out
	}
	src, dst := placed(fromClusters), placed(toClusters)
	if len(src) == 0 {
		return nil, refuse("", "the app runs on no cluster of stage %s (%s)", from.Name, strings.Join(fromClusters, ", "))
	}
	if len(dst) == 0 {
		return nil, refuse("", "the app is placed on no cluster of stage %s (%s)", to.Name, strings.Join(toClusters, ", "))
	}
	source, err := renderedSource(env.WS, a.Name, src)
	if err != nil {
		return nil, refuse("", "%v", err)
	}
	ver, err := verificationOf(ctx, env, a, from)
	if err != nil {
		return nil, refuse("", "%v", err)
	}
	res := &PromoteResult{App: a.Name, From: from.Name, To: to.Name, Source: source, Clusters: dst}
	for _, c := range src {
		ev, err := evidence(ctx, env.ForCluster(c), a, stageCheck{stage: from, source: source, verify: ver}, now())
		if err != nil {
			return nil, refuse(c, "%v", err)
		}
		res.Evidence = append(res.Evidence, *ev)
	}
	msg := promotionMessage(res, opts.ApprovedBy)
	if _, err := env.Promote(ctx, lifecycle.PromoteOptions{App: a.Name, From: from.Name, To: to.Name, Source: source, Message: msg}); err != nil {
		return nil, err
	}
	return res, nil
}

// renderedSource is the source digest the app's rendered objects for the
// clusters carry; they must all carry the same one.
func renderedSource(ws *workspace.Workspace, app string, clusters []string) (string, error) {
	source, from := "", ""
	for _, c := range clusters {
		dir := workspace.AppRenderedDirIn(c, app)
		entries, err := os.ReadDir(ws.Abs(dir))
		if err != nil {
			return "", fmt.Errorf("nothing is rendered for cluster %s (%s/): build the app first", c, dir)
		}
		got := ""
		for _, e := range entries {
			if e.IsDir() || path.Ext(e.Name()) != ".yaml" {
				continue
			}
			data, err := ws.ReadFile(path.Join(dir, e.Name()))
			if err != nil {
				return "", err
			}
			var obj struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if err := yaml.Unmarshal(data, &obj); err == nil && obj.Metadata.Annotations[workspace.AnnotationSource] != "" {
				got = obj.Metadata.Annotations[workspace.AnnotationSource]
				break
			}
		}
		switch {
		case got == "":
			return "", fmt.Errorf("%s/ carries no %s annotation: build the app first", dir, workspace.AnnotationSource)
		case source == "":
			source, from = got, c
		case got != source:
			return "", fmt.Errorf("clusters %s and %s of the stage are rendered from different sources (%s, %s): promote into the stage first", from, c, source, got)
		}
	}
	return source, nil
}

// stageCheck is what every cluster of the source stage must show: the
// stage (its soak time), the source, and the verification to run (nil for
// none).
type stageCheck struct {
	stage  workspace.Environment
	source string
	verify *verification
}

// evidence checks one cluster of the source stage: the app is healthy there
// without drift (so it runs exactly what is rendered for it, source
// annotation included), has been since at least the soak time, and the
// verification Job (the stage's, else the package's) completed.
func evidence(ctx context.Context, env *lifecycle.Env, a *workspace.App, chk stageCheck, now time.Time) (*Evidence, error) {
	st, err := env.Status(ctx, a.Name)
	if err != nil {
		return nil, err
	}
	if len(st) != 1 {
		return nil, fmt.Errorf("app %s has no status there", a.Name)
	}
	s := st[0]
	if s.Health != lifecycle.HealthHealthy {
		reason := s.HealthReason
		if reason == "" {
			reason = "not deployed"
		}
		return nil, fmt.Errorf("app %s is %s (%s)", a.Name, s.Health, reason)
	}
	if len(s.Drift) > 0 {
		return nil, fmt.Errorf("app %s does not run what is rendered for it: %d objects differ (%s %s); it must be deployed first", a.Name, len(s.Drift), s.Drift[0].Action, s.Drift[0].Object)
	}
	cfg, err := env.Cluster()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	since, err := appliedAt(ctx, cs, a)
	if err != nil {
		return nil, err
	}
	if soak := chk.stage.SoakDuration(); now.Sub(since) < soak {
		return nil, fmt.Errorf("app %s has run this source since %s, %s of the stage's soak time %s", a.Name, since.Format(time.RFC3339), now.Sub(since).Round(time.Second), soak)
	}
	ev := &Evidence{Cluster: env.FleetCluster, Health: s.Health, Since: since, Revision: s.Revision}
	if chk.verify != nil {
		name, err := verify(ctx, cs, chk.verify, chk.source)
		if err != nil {
			return nil, err
		}
		ev.Verification = name + " Complete"
	}
	return ev, nil
}

// appliedAt is when the app's inventory was last written: its last apply
// that changed anything, so the app has run its current objects since.
func appliedAt(ctx context.Context, cs kubernetes.Interface, a *workspace.App) (time.Time, error) {
	sec, err := cs.CoreV1().Secrets(a.Namespace).Get(ctx, apply.InventoryName(a.Name), metav1.GetOptions{})
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the inventory of app %s: %w", a.Name, err)
	}
	t := sec.CreationTimestamp.Time
	for _, mf := range sec.ManagedFields {
		if mf.Time != nil && mf.Time.After(t) {
			t = mf.Time.Time
		}
	}
	return t, nil
}

// verify runs a verification Job (once per source: its name carries the
// source digest's prefix) and waits for it to complete; a Job that fails or
// does not finish in time refuses.
func verify(ctx context.Context, cs kubernetes.Interface, v *verification, source string) (string, error) {
	job := *v.job.DeepCopy()
	job.Name = v.nameFor(source)
	timeout := v.timeout
	_, err := cs.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err = cs.BatchV1().Jobs(job.Namespace).Create(ctx, &job, metav1.CreateOptions{}); err != nil {
			return "", fmt.Errorf("creating verification job %s/%s from %s: %w", job.Namespace, job.Name, v.origin, err)
		}
	case err != nil:
		return "", err
	}
	ref := "job " + job.Namespace + "/" + job.Name
	var outcome string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		j, err := cs.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				outcome = "complete"
				return true, nil
			case batchv1.JobFailed:
				outcome = "failed: " + c.Reason + " " + c.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("verification %s (from %s) did not finish within %s", ref, v.origin, timeout)
	}
	if outcome != "complete" {
		return "", fmt.Errorf("verification %s (from %s) %s", ref, v.origin, strings.TrimSpace(outcome))
	}
	return ref, nil
}

func promotionMessage(r *PromoteResult, approvedBy string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "promote %s from %s to %s (%s)\n\n", r.App, r.From, r.To, strings.Join(r.Clusters, ", "))
	fmt.Fprintf(&b, "Every cluster of %s ran source %s healthy for the stage's soak time:\n", r.From, r.Source)
	for _, e := range r.Evidence {
		fmt.Fprintf(&b, "- %s: %s since %s, revision %s", e.Cluster, e.Health, e.Since.UTC().Format(time.RFC3339), e.Revision)
		if e.Verification != "" {
			fmt.Fprintf(&b, ", verification %s", e.Verification)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nBerth-Promote-App: %s\nBerth-Promote-From: %s\nBerth-Promote-To: %s\nBerth-Promote-Source: %s\n", r.App, r.From, r.To, r.Source)
	if approvedBy != "" {
		fmt.Fprintf(&b, "Berth-Approved-By: %s\n", approvedBy)
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
