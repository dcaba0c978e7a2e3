package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/workspace"
)

// UninstallOptions configures Uninstall.
type UninstallOptions struct {
	App string
	// DeleteData deletes the app's volume claims (its data) and the secrets
	// kept for them. Without it the claims are kept (handed over: no longer
	// labelled as the app's, so neither they nor the namespace holding them are
	// deleted) and so are the app's secrets, for a reinstall under the same
	// name and namespace to find its data with the same credentials.
	DeleteData bool
	Timeout    time.Duration
}

// LabelKeptFrom marks a volume claim kept when its app was uninstalled, with
// the app's name: a reinstall of the app adopts it, and an uninstall with
// DeleteData deletes it.
const LabelKeptFrom = deploy.LabelKeptFrom

// UninstallResult says what Uninstall removed and what it kept.
type UninstallResult struct {
	Apps          []string `json:"apps"` // the app and shared dependencies nothing uses any more
	KeptClaims    []string `json:"keptClaims,omitempty"`
	DeletedClaims []string `json:"deletedClaims,omitempty"`
	// KeptSecrets are the workspace files (encrypted) that hold the secrets of
	// the removed apps for a reinstall.
	KeptSecrets []string `json:"keptSecrets,omitempty"`
	// KeptNamespaces are the removed apps' namespaces that stay, with what
	// keeps them.
	KeptNamespaces []KeptNamespace `json:"keptNamespaces,omitempty"`
}

// KeptNamespace is a namespace berth made for an app and kept after it:
// labelled LabelKeptFrom=App, it holds objects berth does not delete.
type KeptNamespace struct {
	Name  string   `json:"name"`
	App   string   `json:"app"`
	Holds []string `json:"holds"` // KIND/NAME, a few at most
}

// DependantsError refuses to remove an app that others use.
type DependantsError struct {
	App        string
	Dependants []string
}

func (e *DependantsError) Error() string {
	return fmt.Sprintf("app %s is used by %s; uninstall %s first", e.App, strings.Join(e.Dependants, ", "), strings.Join(e.Dependants, " and "))
}

// Uninstall removes an app, with the shared dependencies that nothing else
// uses. It refuses while another app depends on it. When a controller manages
// the cluster, the removal is a commit and the controller, the one actor,
// prunes the apps while Uninstall follows it; otherwise Uninstall deletes them
// from the cluster through the deploy library first and then commits, so a
// failure in the cluster leaves the workspace unchanged and a rerun resumes
// (an app whose objects are already gone is done).
func (e *Env) Uninstall(ctx context.Context, opts UninstallOptions) (*UninstallResult, error) {
	release, err := e.writing(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	apps, lock, err := e.appsWith(opts.App)
	if err != nil {
		return nil, err
	}
	if deps := dependants(lock, opts.App); len(deps) > 0 {
		return nil, &DependantsError{App: opts.App, Dependants: deps}
	}
	remaining := maps.Clone(apps)
	delete(remaining, opts.App)
	p, err := e.solve(ctx, remaining, lock, nil)
	if err != nil {
		return nil, err
	}
	removed := []string{opts.App}
	for n, a := range apps {
		if _, still := p.apps[n]; !still && a.Shared {
			removed = append(removed, n)
		}
	}
	slices.Sort(removed)
	res := &UninstallResult{Apps: removed}

	// The app first, then the shared dependencies it alone used.
	order := append([]string{opts.App}, slices.DeleteFunc(slices.Clone(removed), func(n string) bool { return n == opts.App })...)
	rendered := map[string][]*unstructured.Unstructured{}
	for _, n := range order {
		if rendered[n], err = e.WS.ReadRendered(n); err != nil {
			return nil, err
		}
	}
	cl, err := e.claimsOf(rendered)
	if err != nil {
		return nil, err
	}
	ctrl, err := e.Controller(ctx)
	if err != nil {
		return nil, err
	}
	if ctrl != nil {
		// Claims that are kept are handed over before the controller prunes.
		for _, name := range order {
			if err := cl.keep(ctx, apps[name], opts, res); err != nil {
				return nil, err
			}
		}
	} else {
		// This process is the one actor: delete from the cluster first, so a
		// failure leaves the workspace listing the app and a rerun resumes.
		d, err := e.deployer()
		if err != nil {
			return nil, err
		}
		for _, name := range order {
			a := apps[name]
			err := e.step(name, "delete "+name, func() error {
				if err := cl.keep(ctx, a, opts, res); err != nil {
					return err
				}
				if err := d.Remove(ctx, &deploy.App{Name: name, Namespace: a.Namespace, Objects: rendered[name]}, deploy.Options{Timeout: opts.Timeout}).Err; err != nil {
					return err
				}
				return cl.delete(ctx, a, opts, res)
			})
			if err != nil {
				return nil, fmt.Errorf("uninstalling %s from the cluster: %w (the workspace still lists it; run the command again)", name, err)
			}
		}
	}
	var paths []string
	for _, n := range removed {
		paths = append(paths, e.appPaths(n)...)
	}
	paths = append(paths, e.allPaths(p, nil)...)
	msg := "uninstall " + opts.App
	if len(removed) > 1 {
		msg += " and the shared " + strings.Join(slices.DeleteFunc(slices.Clone(removed), func(n string) bool { return n == opts.App }), ", ") + " it alone used"
	}
	for _, n := range removed {
		if !opts.DeleteData || e.hasRetained(apps[n].Namespace, n) {
			paths = append(paths, retainedPath(apps[n].Namespace, n))
		}
	}
	err = e.WS.Change(ctx, msg, dedupe(paths), func() error {
		for _, n := range removed {
			a := apps[n]
			if opts.DeleteData {
				if err := os.Remove(e.WS.Abs(retainedPath(a.Namespace, n))); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				continue
			}
			rel, err := e.retain(ctx, a)
			if err != nil {
				return err
			}
			if rel != "" {
				res.KeptSecrets = append(res.KeptSecrets, rel)
			}
		}
		for _, n := range removed {
			for _, rel := range e.appPaths(n) {
				if err := os.RemoveAll(e.WS.Abs(rel)); err != nil {
					return err
				}
			}
		}
		lock, err := e.lockOf(ctx, p)
		if err != nil {
			return err
		}
		return e.WS.WriteLock(lock)
	})
	if err != nil {
		return nil, err
	}
	if ctrl != nil {
		// The controller is the one actor: the commit removes the apps, and
		// it prunes them; follow it until they are gone.
		var gone []RemovedApp
		for _, n := range order {
			gone = append(gone, RemovedApp{Name: n, Namespace: apps[n].Namespace})
		}
		if _, err := e.deployViaController(ctx, ctrl, DeployOptions{Removed: gone, Timeout: opts.Timeout}); err != nil {
			return res, err
		}
		for _, name := range order {
			if err := cl.delete(ctx, apps[name], opts, res); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// appClaim reports whether claim is one of objs (the app renders
// it), or is named as a StatefulSet of objs names the claims of its volume
// claim templates: TEMPLATE-STATEFULSET-ORDINAL.
func appClaim(objs []*unstructured.Unstructured, claim string) bool {
	for _, o := range objs {
		if o.GetKind() == "PersistentVolumeClaim" && o.GroupVersionKind().Group == "" && o.GetName() == claim {
			return true
		}
		if o.GetKind() != "StatefulSet" {
			continue
		}
		tpls, _, _ := unstructured.NestedSlice(o.Object, "spec", "volumeClaimTemplates")
		for _, t := range tpls {
			tpl, _ := t.(map[string]any)
			meta, _ := tpl["metadata"].(map[string]any)
			tname, _ := meta["name"].(string)
			rest, ok := strings.CutPrefix(claim, tname+"-"+o.GetName()+"-")
			if _, err := strconv.Atoi(rest); ok && tname != "" && err == nil {
				return true
			}
		}
	}
	return false
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// claims handles the volume claims of apps being uninstalled: those made
// from their StatefulSets' claim templates, and those kept from an earlier
// install of them (LabelKeptFrom). A claim that merely carries an app's label
// is not the app's, unless rendered is nil (an install undone at once, whose
// files are gone: every claim labelled as the app's was made by it).
type claims struct {
	cs       kubernetes.Interface
	d        *deploy.Deployer
	rendered map[string][]*unstructured.Unstructured
}

func (e *Env) claimsOf(rendered map[string][]*unstructured.Unstructured) (*claims, error) {
	cfg, err := e.clusterConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	d, err := e.deployer()
	if err != nil {
		return nil, err
	}
	return &claims{cs: cs, d: d, rendered: rendered}, nil
}

// of lists the app's claims.
func (c *claims) of(ctx context.Context, a *workspace.App) ([]corev1.PersistentVolumeClaim, error) {
	pvcs := c.cs.CoreV1().PersistentVolumeClaims(a.Namespace)
	var out []corev1.PersistentVolumeClaim
	seen := map[string]bool{}
	for _, sel := range []string{render.LabelApp + "=" + a.Name, LabelKeptFrom + "=" + a.Name} {
		list, err := pvcs.List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, err
		}
		for _, pvc := range list.Items {
			if !seen[pvc.Name] && (pvc.Labels[LabelKeptFrom] == a.Name || c.rendered == nil || appClaim(c.rendered[a.Name], pvc.Name)) {
				seen[pvc.Name] = true
				out = append(out, pvc)
			}
		}
	}
	return out, nil
}

var (
	// handedOver labels a claim or namespace kept from an app: no longer the
	// app's, so not deleted with it, but marked for a reinstall to adopt.
	handedOver = func(app string) []byte {
		return []byte(`{"metadata":{"labels":{"` + render.LabelApp + `":null,"` + LabelKeptFrom + `":"` + app + `"}}}`)
	}
	// takenBack labels a claim as the app's again, so that it, and the
	// namespace holding it, go with the app.
	takenBack = func(app string) []byte {
		return []byte(`{"metadata":{"labels":{"` + render.LabelApp + `":"` + app + `","` + LabelKeptFrom + `":null}}}`)
	}
)

// keep runs before the app's objects are deleted. Kept data: the claims are
// handed over, so neither they nor the namespace holding them are deleted.
// Deleted data: the claims (those kept from an earlier install too) are the
// app's again, so the namespace goes as well.
func (c *claims) keep(ctx context.Context, a *workspace.App, opts UninstallOptions, res *UninstallResult) error {
	list, err := c.of(ctx, a)
	if err != nil {
		return err
	}
	patch := handedOver(a.Name)
	if opts.DeleteData {
		patch = takenBack(a.Name)
	}
	for _, pvc := range list {
		if _, err := c.cs.CoreV1().PersistentVolumeClaims(a.Namespace).Patch(ctx, pvc.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("labelling persistentvolumeclaim %s/%s: %w", a.Namespace, pvc.Name, err)
		}
		// Recorded now: deleted data may go with the namespace before
		// delete runs.
		if opts.DeleteData {
			res.DeletedClaims = append(res.DeletedClaims, a.Namespace+"/"+pvc.Name)
		} else {
			res.KeptClaims = append(res.KeptClaims, a.Namespace+"/"+pvc.Name)
		}
	}
	return nil
}

// delete runs once the app's objects are deleted. Deleted data: the claims
// go. Kept data: the namespace stays with the claims it holds, handed over
// with them.
func (c *claims) delete(ctx context.Context, a *workspace.App, opts UninstallOptions, res *UninstallResult) error {
	if !opts.DeleteData {
		return c.keepNamespace(ctx, a, res)
	}
	list, err := c.of(ctx, a)
	if err != nil {
		return err
	}
	for _, pvc := range list {
		err := c.cs.CoreV1().PersistentVolumeClaims(a.Namespace).Delete(ctx, pvc.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting persistentvolumeclaim %s/%s: %w", a.Namespace, pvc.Name, err)
		}
		if k := a.Namespace + "/" + pvc.Name; !slices.Contains(res.DeletedClaims, k) {
			res.DeletedClaims = append(res.DeletedClaims, k)
		}
	}
	// The namespace the claims kept (the engine keeps claims, and a
	// namespace holding them) goes now, when it holds nothing of another's.
	if err := c.d.Remove(ctx, &deploy.App{Name: a.Name, Namespace: a.Namespace}, deploy.Options{Timeout: opts.Timeout}).Err; err != nil {
		return err
	}
	return c.keepNamespace(ctx, a, res)
}

// keepNamespace hands the app's namespace over when it outlives the app: it
// holds the app's kept claims, or objects berth did not make for the app (a
// user's, or what the app's software made at run time, as cert-manager's
// webhook makes its CA Secret), and berth deletes neither. The namespace is
// no longer labelled as the app's, and res says what keeps it.
func (c *claims) keepNamespace(ctx context.Context, a *workspace.App, res *UninstallResult) error {
	ns, err := c.cs.CoreV1().Namespaces().Get(ctx, a.Namespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && (ns.Labels[render.LabelApp] != a.Name || ns.DeletionTimestamp != nil)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading namespace %s: %w", a.Namespace, err)
	}
	holds, err := c.d.ForeignObjects(ctx, a.Namespace, a.Name)
	if err != nil {
		return fmt.Errorf("namespace %s: listing what it holds: %w", a.Namespace, err)
	}
	if len(holds) == 0 {
		return nil
	}
	if _, err := c.cs.CoreV1().Namespaces().Patch(ctx, a.Namespace, types.MergePatchType, handedOver(a.Name), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("keeping namespace %s with what it holds: %w", a.Namespace, err)
	}
	res.KeptNamespaces = append(res.KeptNamespaces, KeptNamespace{Name: a.Namespace, App: a.Name, Holds: holds})
	return nil
}

// appsWith reads the workspace's apps and its lock for a change of the app
// name, which must be one of them (else the error names what is wrong with
// it: no such app, or its app.yaml).
func (e *Env) appsWith(name string) (map[string]*workspace.App, *workspace.Lock, error) {
	apps, err := e.workspaceApps()
	if err != nil {
		return nil, nil, err
	}
	if _, ok := apps[name]; !ok {
		_, err := e.WS.App(name)
		if err == nil {
			err = fmt.Errorf("app %s is not in the workspace", name)
		}
		return nil, nil, err
	}
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, nil, err
	}
	return apps, lock, nil
}
