package console

import (
	"context"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/health"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/workspace"
)

// ref is an object of an app as git holds it: never its content, so that a
// rendered Secret's values are not kept in the console's memory.
type ref struct {
	GK        schema.GroupKind
	Namespace string
	Name      string
}

func (r ref) key() string { return objectKey(r.GK, r.Namespace, r.Name) }

// gitApp is an app as the workspace's HEAD has it.
type gitApp struct {
	App     *workspace.App
	Version string
	Objects []ref
	// Err says why the app's rendered objects could not be read.
	Err string
}

// gitView is the workspace at one commit, read once per commit.
type gitView struct {
	Head  string
	Apps  map[string]*gitApp
	Names []string
}

// loadGitView reads the workspace's apps, their locked versions and the
// objects rendered for them.
func loadGitView(ctx context.Context, ws *workspace.Workspace) (*gitView, error) {
	head, _, err := ws.Head(ctx)
	if err != nil {
		return nil, err
	}
	apps, err := ws.Apps()
	if err != nil {
		return nil, err
	}
	lock, err := ws.Lock()
	if err != nil {
		return nil, err
	}
	v := &gitView{Head: head, Apps: map[string]*gitApp{}}
	for _, a := range apps {
		g := &gitApp{App: a}
		if in, ok := lock.Get(resolve.AppKey(a.Name)); ok {
			g.Version = in.Version
		}
		objs, err := ws.ReadRendered(a.Name)
		if err != nil {
			g.Err = err.Error()
		}
		for _, o := range objs {
			ns := o.GetNamespace()
			if ns == "" && namespaced(o.GetKind()) {
				ns = a.Namespace
			}
			g.Objects = append(g.Objects, ref{GK: o.GroupVersionKind().GroupKind(), Namespace: ns, Name: o.GetName()})
		}
		v.Apps[a.Name] = g
		v.Names = append(v.Names, a.Name)
	}
	sort.Strings(v.Names)
	return v, nil
}

// namespaced guesses whether a kind without a namespace in git gets the
// app's: every kind but the cluster-scoped ones berth renders.
func namespaced(kind string) bool {
	switch kind {
	case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "StorageClass", "PriorityClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "PersistentVolume", "IngressClass":
		return false
	}
	return true
}

// Row is one app on the overview.
type Row struct {
	Name, Package, Version, Channel, Namespace string
	Health                                     string
	Reason                                     string
	Missing                                    int // objects in git not in the cluster
	Suspended                                  bool
	Shared                                     bool
	LastError                                  string
	// Incidents counts the app's incidents that are not resolved.
	Incidents int
}

// Drifted says whether the cluster differs from git as far as the cache
// can tell: objects missing, or the controller reporting a failed apply.
func (r Row) Drifted() bool { return r.Missing > 0 }

// worse orders health from good to bad.
var healthRank = map[string]int{lifecycle.HealthHealthy: 0, lifecycle.HealthNotDeployed: 1, lifecycle.HealthProgressing: 2, lifecycle.HealthFailed: 3}

// row joins an app's git state, its live objects and the controller's status.
func row(g *gitApp, live map[string]liveObject, cache *clusterCache, st *berthv1.AppStatus, ws *berthv1.Workspace) Row {
	a := g.App
	r := Row{Name: a.Name, Package: a.Package, Version: g.Version, Channel: a.Channel, Namespace: a.Namespace, Shared: a.Shared}
	if r.Channel == "" && a.Version != "" {
		r.Channel = "pinned " + a.Version
	}
	r.Health = lifecycle.HealthHealthy
	seen := 0
	for _, o := range g.Objects {
		if !cache.watches(o.GK) {
			continue
		}
		l, ok := live[o.key()]
		if !ok {
			r.Missing++
			continue
		}
		seen++
		h := fromStatus(l.health.Status)
		if healthRank[h] > healthRank[r.Health] {
			r.Health, r.Reason = h, o.GK.Kind+"/"+o.Name+": "+l.health.Message
		}
	}
	if seen == 0 {
		r.Health, r.Reason = lifecycle.HealthNotDeployed, ""
	}
	if ws != nil {
		r.Suspended = ws.Spec.Suspend || slices.Contains(ws.Spec.SuspendedApps, a.Name)
	}
	if st != nil {
		r.LastError = st.LastError
	}
	return r
}

func fromStatus(s health.Status) string {
	switch s {
	case health.Current:
		return lifecycle.HealthHealthy
	case health.Failed:
		return lifecycle.HealthFailed
	}
	return lifecycle.HealthProgressing
}

// Filter selects rows of the overview.
type Filter struct {
	Query  string // in name, package or namespace
	Health string // one of the health values, "drifted", "suspended", "incidents" or ""
}

func (f Filter) match(r Row) bool {
	if q := strings.ToLower(strings.TrimSpace(f.Query)); q != "" &&
		!strings.Contains(strings.ToLower(r.Name), q) && !strings.Contains(strings.ToLower(r.Package), q) && !strings.Contains(strings.ToLower(r.Namespace), q) {
		return false
	}
	switch f.Health {
	case "":
		return true
	case "drifted":
		return r.Drifted()
	case "suspended":
		return r.Suspended
	case "incidents":
		return r.Incidents > 0
	}
	return r.Health == f.Health
}
