package runbook

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/pkgspec"
)

// Labels on the objects a run creates.
const (
	LabelRunbook = "berth.dev/runbook"
	LabelRun     = "berth.dev/run"
	LabelRunApp  = "berth.dev/runbook-app"
)

const poll = 250 * time.Millisecond

type kube struct {
	cs     kubernetes.Interface
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newKube(env *lifecycle.Env) (*kube, error) {
	if env.Cluster == nil {
		return nil, errors.New("no cluster configured: set cluster.kubeconfig in berth.yaml or KUBECONFIG")
	}
	cfg, err := env.Cluster()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &kube{cs: cs, dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))}, nil
}

// checks runs the runbook's preconditions; the first that fails is a
// *CheckError carrying its message.
func (k *kube) checks(ctx context.Context, rb pkgspec.Runbook, ns string, data map[string]any) error {
	for i, c := range rb.Checks {
		field := fmt.Sprintf("runbook %s check %d", rb.Name, i+1)
		name, err := render(field+" name", c.Name, data)
		if err != nil {
			return err
		}
		msg, err := render(field+" message", c.Message, data)
		if err != nil {
			return err
		}
		gv, err := schema.ParseGroupVersion(c.APIVersion)
		if err != nil {
			return fmt.Errorf("%s: apiVersion %q: %w", field, c.APIVersion, err)
		}
		m, err := k.mapper.RESTMapping(gv.WithKind(c.Kind).GroupKind(), gv.Version)
		if err != nil {
			return fmt.Errorf("%s: %s %s is not served by the cluster: %w", field, c.APIVersion, c.Kind, err)
		}
		var obj *unstructured.Unstructured
		if m.Scope.Name() == "namespace" {
			obj, err = k.dyn.Resource(m.Resource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		} else {
			obj, err = k.dyn.Resource(m.Resource).Get(ctx, name, metav1.GetOptions{})
		}
		if apierrors.IsNotFound(err) {
			return &CheckError{Runbook: rb.Name, Message: msg}
		}
		if err != nil {
			return fmt.Errorf("%s: reading %s %s: %w", field, c.Kind, name, err)
		}
		if c.Condition != "" && !conditionTrue(obj, c.Condition) {
			return &CheckError{Runbook: rb.Name, Message: msg}
		}
	}
	return nil
}

func conditionTrue(obj *unstructured.Unstructured, cond string) bool {
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range list {
		m, _ := c.(map[string]any)
		if m["type"] == cond && m["status"] == "True" {
			return true
		}
	}
	return false
}

// runJob creates the Job in the app's namespace, labelled with the run, and
// waits until it completes or fails.
func (k *kube) runJob(ctx context.Context, r *run, u *unstructured.Unstructured, d time.Duration) ([]string, error) {
	var job batchv1.Job
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &job); err != nil {
		return nil, fmt.Errorf("job/%s: %w", u.GetName(), err)
	}
	job.Namespace = r.ns()
	if job.Labels == nil {
		job.Labels = map[string]string{}
	}
	job.Labels[LabelRunbook], job.Labels[LabelRun], job.Labels[LabelRunApp] = r.rec.Runbook, r.rec.ID, r.app()
	if _, err := k.cs.BatchV1().Jobs(r.ns()).Create(ctx, &job, metav1.CreateOptions{}); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("job/%s already exists in namespace %s (from an earlier run?); choose another name, or delete it if it is no longer needed", job.Name, r.ns())
		}
		return nil, fmt.Errorf("creating job/%s: %w", job.Name, err)
	}
	detail := []string{fmt.Sprintf("created job/%s", job.Name)}
	var failure string
	err := wait.PollUntilContextTimeout(ctx, poll, d, true, func(ctx context.Context) (bool, error) {
		j, err := k.cs.BatchV1().Jobs(r.ns()).Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				return true, nil
			case batchv1.JobFailed:
				failure = strings.TrimSpace(c.Reason + ": " + c.Message)
				return true, nil
			}
		}
		return false, nil
	})
	switch {
	case failure != "":
		return detail, fmt.Errorf("job/%s failed: %s", job.Name, failure)
	case err != nil:
		return detail, fmt.Errorf("job/%s did not complete within %s: %w", job.Name, d, err)
	}
	return append(detail, fmt.Sprintf("job/%s completed", job.Name)), nil
}

// replicas returns a workload's desired replicas.
func (k *kube) replicas(ctx context.Context, ns, kind, name string) (int32, error) {
	s, err := k.getScale(ctx, ns, kind, name)
	if err != nil {
		return 0, err
	}
	return s.Spec.Replicas, nil
}

func (k *kube) getScale(ctx context.Context, ns, kind, name string) (*autoscalingv1.Scale, error) {
	var s *autoscalingv1.Scale
	var err error
	if kind == "statefulset" {
		s, err = k.cs.AppsV1().StatefulSets(ns).GetScale(ctx, name, metav1.GetOptions{})
	} else {
		s, err = k.cs.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("reading the scale of %s/%s: %w", kind, name, err)
	}
	return s, nil
}

// scale sets a workload's replicas and waits until exactly that many are
// ready and the controller has seen the change. It returns the replicas before.
func (k *kube) scale(ctx context.Context, ns, kind, name string, n int32, d time.Duration) (int32, error) {
	s, err := k.getScale(ctx, ns, kind, name)
	if err != nil {
		return 0, err
	}
	from := s.Spec.Replicas
	s.Spec.Replicas = n
	if kind == "statefulset" {
		_, err = k.cs.AppsV1().StatefulSets(ns).UpdateScale(ctx, name, s, metav1.UpdateOptions{})
	} else {
		_, err = k.cs.AppsV1().Deployments(ns).UpdateScale(ctx, name, s, metav1.UpdateOptions{})
	}
	if err != nil {
		return from, fmt.Errorf("scaling %s/%s to %d: %w", kind, name, n, err)
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, poll, d, true, func(ctx context.Context) (bool, error) {
		var gen, observed int64
		var replicas, ready int32
		if kind == "statefulset" {
			o, err := k.cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			gen, observed, replicas, ready = o.Generation, o.Status.ObservedGeneration, o.Status.Replicas, o.Status.ReadyReplicas
		} else {
			o, err := k.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			gen, observed, replicas, ready = o.Generation, o.Status.ObservedGeneration, o.Status.Replicas, o.Status.AvailableReplicas
		}
		last = fmt.Sprintf("%d of %d ready, %d in all", ready, n, replicas)
		return observed >= gen && replicas == n && ready == n, nil
	})
	if err != nil {
		return from, fmt.Errorf("%s/%s did not reach %d ready replicas within %s (%s): %w", kind, name, n, d, last, err)
	}
	return from, nil
}

// expansion is what an expandVolumes step does.
type expansion struct {
	statefulSet, claim, size string
	timeout                  time.Duration
}

// expansionPlan is what an expansion finds before it changes anything.
type expansionPlan struct {
	sts      *appsv1.StatefulSet
	template string
	size     resource.Quantity
	// grow are the claims smaller than size; all are every claim of the template.
	grow, all []corev1.PersistentVolumeClaim
}

func (p *expansionPlan) describe() []string {
	var out []string
	for _, c := range p.grow {
		cur := c.Spec.Resources.Requests[corev1.ResourceStorage]
		out = append(out, fmt.Sprintf("grow persistentvolumeclaim/%s: %s -> %s", c.Name, cur.String(), p.size.String()))
	}
	if len(p.grow) == 0 {
		out = append(out, fmt.Sprintf("every claim of %s is already %s or larger", p.template, p.size.String()))
	}
	out = append(out,
		fmt.Sprintf("delete statefulset/%s with orphan propagation (its pods and claims stay)", p.sts.Name),
		fmt.Sprintf("deploy the app: re-create statefulset/%s with claim template %s at %s, and wait until healthy", p.sts.Name, p.template, p.size.String()))
	return out
}

// planExpansion reads the StatefulSet and its claims and checks that every
// claim can grow: nothing changes when one cannot.
func (k *kube) planExpansion(ctx context.Context, ns string, x expansion) (*expansionPlan, error) {
	size, err := resource.ParseQuantity(x.size)
	if err != nil {
		return nil, fmt.Errorf("size %q is not a size such as 16Gi", x.size)
	}
	sts, err := k.cs.AppsV1().StatefulSets(ns).Get(ctx, x.statefulSet, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading statefulset/%s: %w", x.statefulSet, err)
	}
	p := &expansionPlan{sts: sts, size: size}
	var names []string
	for _, t := range sts.Spec.VolumeClaimTemplates {
		names = append(names, t.Name)
		if t.Name == x.claim || (x.claim == "" && len(sts.Spec.VolumeClaimTemplates) == 1) {
			p.template = t.Name
		}
	}
	if p.template == "" {
		return nil, fmt.Errorf("statefulset/%s has no claim template %q (it has %v)", sts.Name, x.claim, names)
	}
	claims, err := k.cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing persistentvolumeclaims: %w", err)
	}
	own := regexp.MustCompile("^" + regexp.QuoteMeta(p.template+"-"+sts.Name+"-") + "[0-9]+$")
	classes := map[string]bool{}
	for _, c := range claims.Items {
		if !own.MatchString(c.Name) {
			continue
		}
		p.all = append(p.all, c)
		cur := c.Spec.Resources.Requests[corev1.ResourceStorage]
		switch cmp := size.Cmp(cur); {
		case cmp < 0:
			return nil, fmt.Errorf("persistentvolumeclaim/%s is %s: volumes only grow, and %s is smaller", c.Name, cur.String(), size.String())
		case cmp == 0:
			continue
		}
		sc := ""
		if c.Spec.StorageClassName != nil {
			sc = *c.Spec.StorageClassName
		}
		if _, seen := classes[sc]; !seen {
			ok, err := k.expandable(ctx, sc)
			if err != nil {
				return nil, err
			}
			classes[sc] = ok
		}
		if !classes[sc] {
			return nil, fmt.Errorf("persistentvolumeclaim/%s cannot grow: its storage class %q does not allow volume expansion (allowVolumeExpansion)", c.Name, sc)
		}
		p.grow = append(p.grow, c)
	}
	sort.Slice(p.all, func(i, j int) bool { return p.all[i].Name < p.all[j].Name })
	sort.Slice(p.grow, func(i, j int) bool { return p.grow[i].Name < p.grow[j].Name })
	return p, nil
}

func (k *kube) expandable(ctx context.Context, class string) (bool, error) {
	if class == "" {
		return false, nil
	}
	sc, err := k.cs.StorageV1().StorageClasses().Get(ctx, class, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("reading storageclass %s: %w", class, err)
	}
	return sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion, nil
}

// expand grows each claim, deletes the StatefulSet leaving its pods and
// claims, deploys the app (which re-creates it with the workspace's claim
// template) and checks the result: the template at the new size, every claim
// still there.
func (k *kube) expand(ctx context.Context, r *run, x expansion) result {
	ns, app := r.ns(), r.app()
	p, err := k.planExpansion(ctx, ns, x)
	if err != nil {
		return result{err: err, state: "Nothing was changed by this step.", next: "Fix the cause and run the runbook again."}
	}
	var res result
	var grown []string
	for _, c := range p.grow {
		patch := fmt.Sprintf(`{"spec":{"resources":{"requests":{"storage":%q}}}}`, p.size.String())
		if _, err := k.cs.CoreV1().PersistentVolumeClaims(ns).Patch(ctx, c.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			res.err = fmt.Errorf("growing persistentvolumeclaim/%s: %w", c.Name, err)
			res.state = fmt.Sprintf("Claims grown so far: %v; statefulset/%s is unchanged.", grown, p.sts.Name)
			res.next = "Fix the cause and run the runbook again: claims already grown are left as they are."
			return res
		}
		cur := c.Spec.Resources.Requests[corev1.ResourceStorage]
		grown = append(grown, c.Name)
		res.detail = append(res.detail, fmt.Sprintf("persistentvolumeclaim/%s: %s -> %s", c.Name, cur.String(), p.size.String()))
	}
	orphan := metav1.DeletePropagationOrphan
	err = k.cs.AppsV1().StatefulSets(ns).Delete(ctx, p.sts.Name, metav1.DeleteOptions{PropagationPolicy: &orphan, Preconditions: &metav1.Preconditions{UID: &p.sts.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		res.err = fmt.Errorf("deleting statefulset/%s (orphaning its pods): %w", p.sts.Name, err)
		res.state = fmt.Sprintf("The claims are grown (%v); statefulset/%s still has its old claim template.", grown, p.sts.Name)
		res.next = "Run the runbook again."
		return res
	}
	gone := wait.PollUntilContextTimeout(ctx, poll, x.timeout, true, func(ctx context.Context) (bool, error) {
		o, err := k.cs.AppsV1().StatefulSets(ns).Get(ctx, p.sts.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && o.UID != p.sts.UID, err
	})
	recreate := fmt.Sprintf("statefulset/%s was deleted with its pods and claims kept (orphaned: they run on); the claims are grown (%v).", p.sts.Name, grown)
	deployNext := fmt.Sprintf("Run 'berth deploy %s' to re-create it from the workspace, which adopts the pods and claims again.", app)
	if gone != nil {
		return result{detail: res.detail, err: fmt.Errorf("statefulset/%s was not deleted within %s: %w", p.sts.Name, x.timeout, gone), state: recreate, next: deployNext}
	}
	res.detail = append(res.detail, fmt.Sprintf("deleted statefulset/%s, orphaning its pods and claims", p.sts.Name))
	if err := r.deploy(ctx, x.timeout); err != nil {
		return result{detail: res.detail, err: err, state: recreate + " The deploy to re-create it failed.", next: deployNext + " See why with 'berth status " + app + "'."}
	}
	sts, err := k.cs.AppsV1().StatefulSets(ns).Get(ctx, p.sts.Name, metav1.GetOptions{})
	if err != nil {
		return result{detail: res.detail, err: fmt.Errorf("reading the re-created statefulset/%s: %w", p.sts.Name, err), state: recreate, next: deployNext}
	}
	for _, t := range sts.Spec.VolumeClaimTemplates {
		if t.Name != p.template {
			continue
		}
		if got := t.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(p.size) != 0 {
			return result{detail: res.detail,
				err:   fmt.Errorf("the re-created statefulset/%s asks for %s in claim template %s, not %s: the workspace's configuration does not have the new size", sts.Name, got.String(), p.template, p.size.String()),
				state: fmt.Sprintf("statefulset/%s is re-created from the workspace with its old claim template; the claims are grown (%v).", sts.Name, grown),
				next:  "Set the size in the app's configuration (a config step before this one), deploy, and run the runbook again."}
		}
	}
	for _, c := range p.all {
		if _, err := k.cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, c.Name, metav1.GetOptions{}); err != nil {
			return result{detail: res.detail, err: fmt.Errorf("persistentvolumeclaim/%s is gone after the re-creation: %w", c.Name, err),
				state: "A claim of the StatefulSet is missing.", next: "Check its PersistentVolume (reclaim policy) before anything else."}
		}
	}
	res.detail = append(res.detail, fmt.Sprintf("re-created statefulset/%s with claim template %s at %s; %d claim(s) kept; healthy", sts.Name, p.template, p.size.String(), len(p.all)))
	return res
}

func (k *kube) createSecret(ctx context.Context, r *run, name string, data map[string]string) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.ns(), Labels: map[string]string{LabelRunbook: r.rec.Runbook, LabelRun: r.rec.ID, LabelRunApp: r.app()}},
		StringData: data,
	}
	if _, err := k.cs.CoreV1().Secrets(r.ns()).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating secret/%s: %w", name, err)
	}
	return nil
}

func (k *kube) deleteSecret(ctx context.Context, ns, name string) error {
	err := k.cs.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting secret/%s of the run: %w", name, err)
	}
	return nil
}
