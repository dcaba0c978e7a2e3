package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"berth.dev/berth/internal/apply"
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
const LabelKeptFrom = "berth.dev/kept-from"

// UninstallResult says what Uninstall removed and what it kept.
type UninstallResult struct {
	Apps          []string `json:"apps"` // the app and shared dependencies nothing uses any more
	KeptClaims    []string `json:"keptClaims,omitempty"`
	DeletedClaims []string `json:"deletedClaims,omitempty"`
	// KeptSecrets are the workspace files (encrypted) that hold the secrets of
	// the removed apps for a reinstall.
	KeptSecrets []string `json:"keptSecrets,omitempty"`
}

// DependantsError refuses to remove an app that others use.
type DependantsError struct {
	App        string
	Dependants []string
}

func (e *DependantsError) Error() string {
	return fmt.Sprintf("app %s is used by %s; uninstall %s first", e.App, strings.Join(e.Dependants, ", "), strings.Join(e.Dependants, " and "))
}

// Uninstall removes an app from the cluster and then from the workspace, with
// the shared dependencies that nothing else uses. It refuses while another app
// depends on it. A failure in the cluster leaves the workspace unchanged, so the
// command can be run again.
func (e *Env) Uninstall(ctx context.Context, opts UninstallOptions) (*UninstallResult, error) {
	apps, err := e.workspaceApps()
	if err != nil {
		return nil, err
	}
	if _, ok := apps[opts.App]; !ok {
		_, err := e.WS.App(opts.App)
		return nil, err
	}
	lock, err := e.WS.Lock()
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

	cfg, err := e.clusterConfig()
	if err != nil {
		return nil, err
	}
	eng, err := apply.NewEngine(cfg, apply.DefaultOptions())
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	// The app first, then the shared dependencies it alone used.
	order := append([]string{opts.App}, slices.DeleteFunc(slices.Clone(removed), func(n string) bool { return n == opts.App })...)
	for _, name := range order {
		a := apps[name]
		err := e.step(name, "delete "+name, func() error {
			return e.deleteApp(ctx, appDeletion{cs: cs, eng: eng, app: a, opts: opts, res: res})
		})
		if err != nil {
			return nil, fmt.Errorf("uninstalling %s from the cluster: %w (the workspace still lists it; run the command again)", name, err)
		}
	}
	var paths []string
	for _, n := range removed {
		paths = append(paths, appPaths(n)...)
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
			for _, rel := range appPaths(n) {
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
	return res, nil
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// appDeletion is one app being deleted from the cluster.
type appDeletion struct {
	cs   kubernetes.Interface
	eng  *apply.Engine
	app  *workspace.App
	opts UninstallOptions
	res  *UninstallResult
}

// deleteApp deletes an app's objects; its volume claims are handed over first
// (kept), or deleted after the objects with DeleteData.
func (e *Env) deleteApp(ctx context.Context, d appDeletion) error {
	a := d.app
	pvcs := d.cs.CoreV1().PersistentVolumeClaims(a.Namespace)
	var claims []corev1.PersistentVolumeClaim
	// Claims of the app, and those kept from an earlier install of it.
	for _, sel := range []string{render.LabelApp + "=" + a.Name, LabelKeptFrom + "=" + a.Name} {
		list, err := pvcs.List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return err
		}
		claims = append(claims, list.Items...)
	}
	// Kept: handed over, no longer the app's, so neither they nor the
	// namespace that holds them are deleted. Deleted: all the app's again
	// (claims kept from an earlier install too), so the namespace goes as well.
	patch := []byte(`{"metadata":{"labels":{"` + render.LabelApp + `":null,"` + LabelKeptFrom + `":"` + a.Name + `"}}}`)
	if d.opts.DeleteData {
		patch = []byte(`{"metadata":{"labels":{"` + render.LabelApp + `":"` + a.Name + `","` + LabelKeptFrom + `":null}}}`)
	}
	for _, c := range claims {
		if _, err := pvcs.Patch(ctx, c.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("labelling persistentvolumeclaim %s/%s: %w", a.Namespace, c.Name, err)
		}
		if !d.opts.DeleteData {
			d.res.KeptClaims = append(d.res.KeptClaims, a.Namespace+"/"+c.Name)
		}
	}
	if _, err := d.eng.Delete(ctx, apply.DeleteOptions{App: a.Name, Namespace: a.Namespace, Wait: true, Timeout: d.opts.Timeout}); err != nil {
		return err
	}
	if !d.opts.DeleteData {
		if len(claims) == 0 {
			return nil
		}
		// The namespace stays with the claims it holds: handed over with them.
		patch = []byte(`{"metadata":{"labels":{"` + render.LabelApp + `":null,"` + LabelKeptFrom + `":"` + a.Name + `"}}}`)
		ns, err := d.cs.CoreV1().Namespaces().Get(ctx, a.Namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && ns.Labels[render.LabelApp] != a.Name) {
			return nil
		}
		if err == nil {
			_, err = d.cs.CoreV1().Namespaces().Patch(ctx, a.Namespace, types.MergePatchType, patch, metav1.PatchOptions{})
		}
		if err != nil {
			return fmt.Errorf("keeping namespace %s with the claims it holds: %w", a.Namespace, err)
		}
		return nil
	}
	for _, c := range claims {
		err := pvcs.Delete(ctx, c.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting persistentvolumeclaim %s/%s: %w", a.Namespace, c.Name, err)
		}
		d.res.DeletedClaims = append(d.res.DeletedClaims, a.Namespace+"/"+c.Name)
	}
	return nil
}
