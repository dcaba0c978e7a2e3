package lifecycle

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

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
	// KeepData keeps the app's volume claims (and so its namespace): they are
	// handed over (no longer labelled as the app's) instead of deleted.
	KeepData bool
	Timeout  time.Duration
}

// UninstallResult says what Uninstall removed.
type UninstallResult struct {
	Apps       []string `json:"apps"` // the app and shared dependencies nothing uses any more
	KeptClaims []string `json:"keptClaims,omitempty"`
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

	// The app first, then the shared dependencies it alone used.
	order := append([]string{opts.App}, slices.DeleteFunc(slices.Clone(removed), func(n string) bool { return n == opts.App })...)
	rendered := map[string][]*unstructured.Unstructured{}
	for _, n := range order {
		if rendered[n], err = e.WS.ReadRendered(n); err != nil {
			return nil, err
		}
	}
	ctrl, err := e.Controller(ctx)
	if err != nil {
		return nil, err
	}
	if ctrl != nil {
		// Claims that are kept are handed over before the controller prunes.
		if err := e.handleClaims(ctx, apps, rendered, order, opts, res, true); err != nil {
			return nil, err
		}
	} else {
		// This process is the one actor: delete from the cluster first, so a
		// failure leaves the workspace listing the app and a rerun resumes.
		if err := e.removeFromCluster(ctx, apps, rendered, order, opts, res); err != nil {
			return nil, err
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
	err = e.WS.Change(ctx, msg, dedupe(paths), func() error {
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
		if err := e.handleClaims(ctx, apps, rendered, order, opts, res, false); err != nil {
			return res, err
		}
	}
	return res, nil
}

// removeFromCluster deletes the apps from the cluster through the deploy
// library, handling their volume claims as opts says.
func (e *Env) removeFromCluster(ctx context.Context, apps map[string]*workspace.App, rendered map[string][]*unstructured.Unstructured, order []string, opts UninstallOptions, res *UninstallResult) error {
	d, err := e.deployer()
	if err != nil {
		return err
	}
	if err := e.handleClaims(ctx, apps, rendered, order, opts, res, true); err != nil {
		return err
	}
	for _, name := range order {
		a := apps[name]
		err := e.step(name, "delete "+name, func() error {
			return d.Remove(ctx, name, a.Namespace, deploy.Options{Timeout: opts.Timeout}).Err
		})
		if err != nil {
			return fmt.Errorf("uninstalling %s from the cluster: %w (the workspace still lists it; run the command again)", name, err)
		}
	}
	return e.handleClaims(ctx, apps, rendered, order, opts, res, false)
}

// handleClaims deals with the apps' volume claims (made from their
// StatefulSets' claim templates, labelled as theirs): before the deletion it
// hands them over when they are kept; after it, it deletes them when they are
// not.
func (e *Env) handleClaims(ctx context.Context, apps map[string]*workspace.App, rendered map[string][]*unstructured.Unstructured, order []string, opts UninstallOptions, res *UninstallResult, before bool) error {
	if before != opts.KeepData {
		return nil
	}
	cfg, err := e.clusterConfig()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, name := range order {
		ns := apps[name].Namespace
		claims, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: render.LabelApp + "=" + name})
		if err != nil {
			return err
		}
		for _, c := range claims.Items {
			if !madeByStatefulSets(rendered[name], c.Name) {
				continue // not the app's: a claim someone labelled by hand
			}
			if opts.KeepData {
				// Handed over: no longer the app's, so neither they nor the
				// namespace that holds them are deleted.
				patch := []byte(`{"metadata":{"labels":{"` + render.LabelApp + `":null}}}`)
				if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Patch(ctx, c.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
					return fmt.Errorf("keeping persistentvolumeclaim %s/%s: %w", ns, c.Name, err)
				}
				res.KeptClaims = append(res.KeptClaims, ns+"/"+c.Name)
				continue
			}
			err := cs.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, c.Name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting persistentvolumeclaim %s/%s: %w", ns, c.Name, err)
			}
		}
	}
	return nil
}

// madeByStatefulSets reports whether claim is named as a StatefulSet of objs
// names the claims of its volume claim templates: TEMPLATE-STATEFULSET-ORDINAL.
func madeByStatefulSets(objs []*unstructured.Unstructured, claim string) bool {
	for _, o := range objs {
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
