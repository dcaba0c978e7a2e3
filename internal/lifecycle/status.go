package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/workspace"
)

// Health of an app.
const (
	HealthHealthy     = "Healthy"
	HealthProgressing = "Progressing"
	HealthFailed      = "Failed"
	HealthNotDeployed = "NotDeployed"
)

// AppStatus describes an installed app and its state in the cluster.
type AppStatus struct {
	App       string `json:"app"`
	Package   string `json:"package"`
	Version   string `json:"version"`
	Channel   string `json:"channel,omitempty"`
	Namespace string `json:"namespace"`
	Shared    bool   `json:"shared,omitempty"`
	// Health is the health of the app's objects; HealthReason says why it is
	// not Healthy, from the first object that is not.
	Health       string          `json:"health"`
	HealthReason string          `json:"healthReason,omitempty"`
	Objects      int             `json:"objects"`
	NotReady     []ObjectProblem `json:"notReady,omitempty"`
	// Drift lists the objects that differ from the workspace's rendered
	// objects: what a deploy would change.
	Drift []DriftedObject `json:"drift,omitempty"`
	// Suspended: the controller managing this workspace leaves the app alone.
	Suspended bool `json:"suspended"`
	// Revision is the workspace commit last applied to the app without failures.
	Revision string `json:"revision,omitempty"`
	// UpgradeAvailable is the newest version the app's channel or version
	// constraint allows, when it is newer than the locked Version.
	UpgradeAvailable string `json:"upgradeAvailable,omitempty"`
}

// Summary is the app's state in a few words: its health, qualified when it has
// drifted or is suspended, so neither is ever shown as plain "Healthy".
func (s AppStatus) Summary() string {
	var qual []string
	if s.Suspended {
		qual = append(qual, "suspended")
	}
	if len(s.Drift) > 0 {
		qual = append(qual, fmt.Sprintf("drifted (%d)", len(s.Drift)))
	}
	if len(qual) == 0 {
		return s.Health
	}
	return s.Health + ", " + strings.Join(qual, ", ")
}

// ObjectProblem is an object that is not healthy, and why.
type ObjectProblem struct {
	Object  string `json:"object"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// DriftedObject is an object a deploy would change, and why.
type DriftedObject struct {
	Object string `json:"object"`
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// Status reports the named apps (all when none is named): their package and
// version from the workspace; their health, drift and applied revision from
// the cluster; whether the controller has suspended them; and whether their
// channel or constraint allows a newer version than the lock holds.
func (e *Env) Status(ctx context.Context, names ...string) ([]AppStatus, error) {
	apps, err := e.workspaceApps()
	if err != nil {
		return nil, err
	}
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, err
	}
	if e.WS.Config.IsFleet() && e.FleetCluster == "" {
		return nil, errors.New("the workspace has clusters: ask for the status of one of them (or of the fleet)")
	}
	ordered, err := e.order(names)
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		ordered = names
	}
	eng, err := e.engine()
	if err != nil {
		return nil, err
	}
	suspended, err := e.suspension(ctx)
	if err != nil {
		return nil, err
	}
	h, err := e.readHead(ctx)
	if err != nil {
		return nil, err
	}
	var out []AppStatus
	for _, name := range ordered {
		if _, placed := h.snap.Apps[name]; !placed && e.FleetCluster != "" {
			continue // not placed on this cluster
		}
		a := apps[name]
		st := AppStatus{App: name, Package: a.Package, Channel: a.Channel, Namespace: a.Namespace, Shared: a.Shared}
		if in, ok := lock.Get(resolve.AppKey(name)); ok {
			st.Version = in.Version
		}
		st.Suspended = suspended(name)
		if st.UpgradeAvailable, err = e.upgradeAvailable(ctx, a, st.Version); err != nil {
			return nil, err
		}
		inv, err := eng.Inventory(ctx, name, a.Namespace)
		if err != nil {
			return nil, err
		}
		st.Revision = inv.Revision
		st.Objects = len(inv.Entries)
		if len(inv.Entries) == 0 {
			st.Health = HealthNotDeployed
			out = append(out, st)
			continue
		}
		// What HEAD holds for the app, as deploy reads it.
		objs, err := workspace.ReadRenderedFS(h.fs, workspace.AppRenderedDirIn(h.cluster, name), h.key)
		if err != nil {
			return nil, err
		}
		if objs, err = deploy.StripIgnoredFields(objs); err != nil {
			return nil, err
		}
		if err := appHealth(ctx, eng, inv, objs, &st); err != nil {
			return nil, err
		}
		if st.Drift, err = drift(ctx, eng, a, objs); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// appHealth waits briefly for the objects of inv: healthy apps answer at the
// first read. Helm hooks (among objs) are not judged: they run at their
// events, and may be gone after they ran.
func appHealth(ctx context.Context, eng *apply.Engine, inv *apply.Inventory, objs []*unstructured.Unstructured, st *AppStatus) error {
	hooks := map[string]bool{}
	for _, o := range objs {
		if apply.IsHook(o) {
			r := apply.RefOf(o)
			hooks[r.Group+"/"+r.Kind+"/"+r.Name] = true
		}
	}
	refs := make([]apply.ObjectRef, 0, len(inv.Entries))
	for _, en := range inv.Entries {
		if r := en.Ref(); !hooks[r.Group+"/"+r.Kind+"/"+r.Name] {
			refs = append(refs, r)
		}
	}
	_, err := eng.Wait(ctx, refs, apply.WaitOptions{App: inv.App, Timeout: 2 * time.Second})
	var nr *apply.NotReadyError
	switch {
	case err == nil:
		st.Health = HealthHealthy
		return nil
	case !errors.As(err, &nr):
		return err
	}
	st.Health = HealthProgressing
	if nr.Failed {
		st.Health = HealthFailed
	}
	for obj, res := range nr.NotReady {
		st.NotReady = append(st.NotReady, ObjectProblem{Object: obj, Status: string(res.Status), Message: res.Message})
	}
	sort.Slice(st.NotReady, func(i, j int) bool { return st.NotReady[i].Object < st.NotReady[j].Object })
	for _, p := range st.NotReady {
		// A failed object explains more than one still in progress.
		if st.HealthReason == "" || p.Status == HealthFailed {
			st.HealthReason = p.Object + ": " + p.Message
		}
		if p.Status == HealthFailed {
			break
		}
	}
	return nil
}

// drift plans the app's objects at HEAD: the engine decides unchanged objects
// from its inventory and dry-runs only the others, so this writes nothing.
func drift(ctx context.Context, eng *apply.Engine, a *workspace.App, objs []*unstructured.Unstructured) ([]DriftedObject, error) {
	plan, err := eng.Plan(ctx, objs, apply.PlanOptions{App: a.Name, Namespace: a.Namespace, Prune: true})
	if err != nil {
		return nil, fmt.Errorf("planning app %s: %w", a.Name, err)
	}
	var out []DriftedObject
	for _, c := range plan.Changes {
		switch c.Action {
		case apply.ActionCreate, apply.ActionUpdate, apply.ActionDelete, apply.ActionFail:
			out = append(out, DriftedObject{Object: c.Object.String(), Action: string(c.Action), Reason: c.Reason})
		}
	}
	return out, nil
}

// upgradeAvailable returns the newest version a's channel (or version
// constraint) allows when it is newer than the locked one; never an older one.
func (e *Env) upgradeAvailable(ctx context.Context, a *workspace.App, locked string) (string, error) {
	if e.Catalogs == nil || locked == "" || a.Shared {
		return "", nil
	}
	cur, err := semver.NewVersion(locked)
	if err != nil {
		return "", nil
	}
	f, err := e.Catalogs.Find(ctx, a.Package)
	if err != nil {
		// The package left the catalogs: nothing to upgrade to.
		return "", nil
	}
	var newest *semver.Version
	if a.Version != "" {
		c, err := semver.NewConstraint(a.Version)
		if err != nil {
			return "", fmt.Errorf("app %s: version constraint %q: %w", a.Name, a.Version, err)
		}
		for _, v := range f.Entry.Versions {
			sv, err := semver.NewVersion(v.Version)
			if err == nil && c.Check(sv) && (newest == nil || sv.GreaterThan(newest)) {
				newest = sv
			}
		}
	} else {
		channel := a.Channel
		if channel == "" {
			channel = "stable"
		}
		if v, ok := f.Entry.Channels[channel]; ok {
			newest, _ = semver.NewVersion(v)
		}
	}
	if newest == nil || !newest.GreaterThan(cur) {
		return "", nil
	}
	return newest.Original(), nil
}

// suspension returns whether the controller managing this workspace (see
// Controller) leaves an app alone. Without one, nothing is suspended.
func (e *Env) suspension(ctx context.Context) (func(app string) bool, error) {
	c, err := e.following(ctx)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return func(string) bool { return false }, nil
	}
	return c.Workspace.AppSuspended, nil
}
