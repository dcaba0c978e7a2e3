package lifecycle

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/render"
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

// Uninstall removes an app from the cluster and then from the workspace, with
// the shared dependencies that nothing else uses. It refuses while another app
// depends on it. A failure in the cluster leaves the workspace unchanged, so the
// command can be run again.
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
			claims, err := cs.CoreV1().PersistentVolumeClaims(a.Namespace).List(ctx, metav1.ListOptions{LabelSelector: render.LabelApp + "=" + name})
			if err != nil {
				return err
			}
			if opts.KeepData {
				// Handed over: no longer the app's, so neither they nor the
				// namespace that holds them are deleted.
				patch := []byte(`{"metadata":{"labels":{"` + render.LabelApp + `":null}}}`)
				for _, c := range claims.Items {
					if _, err := cs.CoreV1().PersistentVolumeClaims(a.Namespace).Patch(ctx, c.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
						return fmt.Errorf("keeping persistentvolumeclaim %s/%s: %w", a.Namespace, c.Name, err)
					}
					res.KeptClaims = append(res.KeptClaims, a.Namespace+"/"+c.Name)
				}
			}
			if _, err := eng.Delete(ctx, apply.DeleteOptions{App: name, Namespace: a.Namespace, Wait: true, Timeout: opts.Timeout}); err != nil {
				return err
			}
			if !opts.KeepData {
				for _, c := range claims.Items {
					err := cs.CoreV1().PersistentVolumeClaims(a.Namespace).Delete(ctx, c.Name, metav1.DeleteOptions{})
					if err != nil && !apierrors.IsNotFound(err) {
						return fmt.Errorf("deleting persistentvolumeclaim %s/%s: %w", a.Namespace, c.Name, err)
					}
				}
			}
			return nil
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
	return res, nil
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
