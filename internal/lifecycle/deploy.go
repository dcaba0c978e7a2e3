package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/workspace"
)

// DeployOptions configures Deploy.
type DeployOptions struct {
	// Apps to deploy, with the apps they depend on; all when empty.
	Apps []string
	// Timeout bounds each phase's wait for health.
	Timeout time.Duration
	// ForceConflicts takes fields that other field managers own.
	ForceConflicts bool
	// Removed are apps the workspace no longer has (uninstalled), whose
	// objects are deleted first, in this order.
	Removed []RemovedApp
}

// RemovedApp is an app removed from the workspace.
type RemovedApp struct{ Name, Namespace string }

// DeployResult lists the apps deployed, in order.
type DeployResult = deploy.Result

// order returns the named apps (all when none is named) and what they depend
// on, in dependency order, as the working tree holds them.
func (e *Env) order(names []string) ([]string, error) {
	snap, err := workspace.Load(os.DirFS(e.WS.Root))
	if err != nil {
		return nil, err
	}
	ordered, err := snap.Order(names...)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ordered))
	for i, a := range ordered {
		out[i] = a.Name
	}
	return out, nil
}

// head is the workspace as its HEAD commit holds it: what Deploy deploys.
type head struct {
	fs       *workspace.TreeFS
	revision string
	snap     *workspace.Snapshot
	key      *secrets.Key
	// cluster is the fleet cluster whose rendered objects are read.
	cluster string
}

// readHead loads the workspace at HEAD with the loader the controller uses, so
// both deploy the same commit the same way; an uncommitted change is never
// deployed.
func (e *Env) readHead(ctx context.Context) (*head, error) {
	tfs, rev, err := workspace.CommitFS(e.WS.Root, "HEAD")
	if err != nil {
		return nil, err
	}
	snap, err := workspace.Load(tfs)
	if err != nil {
		return nil, fmt.Errorf("the workspace at HEAD (%s): %w", rev[:12], err)
	}
	if e.FleetCluster != "" {
		snap = snap.PlacedOn(tfs, e.FleetCluster)
	}
	h := &head{fs: tfs, revision: rev, snap: snap, cluster: e.FleetCluster}
	if key, _, err := secrets.RepoKey(ctx, e.WS.Root); err == nil {
		h.key = key
	}
	return h, nil
}

// apps returns the deploy library's apps for the named apps (all when none)
// and what they depend on, in dependency order.
func (h *head) apps(names []string) ([]*deploy.App, error) {
	ordered, err := h.snap.Order(names...)
	if err != nil {
		return nil, err
	}
	out := make([]*deploy.App, 0, len(ordered))
	for _, a := range ordered {
		da := &deploy.App{Name: a.Name, Namespace: a.Namespace, DependsOn: a.DependsOn, Err: a.Err}
		if da.Err == nil {
			da.Objects, da.Err = workspace.ReadRenderedFS(h.fs, workspace.AppRenderedDirIn(h.cluster, a.Name), h.key)
		}
		out = append(out, da)
	}
	return out, nil
}

func (e *Env) clusterConfig() (*rest.Config, error) {
	if e.Cluster == nil {
		return nil, errors.New("no cluster configured: set cluster.kubeconfig in berth.yaml or KUBECONFIG")
	}
	return e.Cluster()
}

func (e *Env) engine() (*apply.Engine, error) {
	cfg, err := e.clusterConfig()
	if err != nil {
		return nil, err
	}
	return apply.NewEngine(cfg, apply.DefaultOptions())
}

func (e *Env) deployer() (*deploy.Deployer, error) {
	cfg, err := e.clusterConfig()
	if err != nil {
		return nil, err
	}
	clients, err := apply.NewClients(cfg, apply.DefaultOptions())
	if err != nil {
		return nil, err
	}
	eng, err := apply.NewEngineForClients(*clients, apply.DefaultOptions())
	if err != nil {
		return nil, err
	}
	return deploy.New(eng, clients.Dynamic), nil
}

// Deploy brings the cluster to the workspace's HEAD commit. When a controller
// manages the cluster (see Controller), it is the one actor: Deploy pushes
// HEAD where it reads it, asks it to reconcile and follows its progress until
// the apps are applied at HEAD and ready. Without one, Deploy applies through
// the deploy library, as the controller does: removed apps deleted first,
// then in dependency order, each app phase by phase, each phase healthy
// before the next, pruning what the app no longer renders. An app that is not
// ready holds back the apps that depend on it; the error is then a
// *deploy.AppError. Unchanged apps cost no writes.
func (e *Env) Deploy(ctx context.Context, opts DeployOptions) (*DeployResult, error) {
	// A change a killed command left half-written is finished or discarded
	// first, so HEAD is what the last finished command committed.
	release, err := e.writing(ctx)
	if err != nil {
		return nil, err
	}
	release()
	if e.WS.Config.IsFleet() && e.FleetCluster == "" {
		return e.deployFleet(ctx, opts)
	}
	c, err := e.Controller(ctx)
	if err != nil {
		return nil, err
	}
	if c != nil {
		return e.deployViaController(ctx, c, opts)
	}
	h, err := e.readHead(ctx)
	if err != nil {
		return nil, err
	}
	apps, err := h.apps(opts.Apps)
	if err != nil {
		return nil, err
	}
	d, err := e.deployer()
	if err != nil {
		return nil, err
	}
	dopts := deploy.Options{Timeout: opts.Timeout, Workers: 1, Revision: h.revision, RetryFor: max(opts.Timeout, time.Minute),
		ForceConflicts: opts.ForceConflicts, Events: e.deployEvents()}
	var removed []deploy.AppResult
	for _, r := range opts.Removed {
		rr := d.Remove(ctx, &deploy.App{Name: r.Name, Namespace: r.Namespace}, dopts)
		removed = append(removed, rr)
		if rr.Err != nil {
			res := &DeployResult{Apps: removed}
			return res, res.Err()
		}
	}
	res := d.Deploy(ctx, apps, dopts)
	res.Apps = append(removed, res.Apps...)
	return res, res.Err()
}

// deployEvents turns the deploy library's events into progress.
func (e *Env) deployEvents() func(deploy.Event) {
	if e.Events == nil && e.DeployEvents == nil {
		return nil
	}
	started := map[string]time.Time{}
	return func(ev deploy.Event) {
		if e.DeployEvents != nil {
			e.DeployEvents(ev)
		}
		switch ev.Type {
		case deploy.EventAppStarted:
			started[ev.App] = time.Now()
			e.emit(Event{App: ev.App, Message: "deploy " + ev.App})
		case deploy.EventObject:
			if ev.Apply.Type == apply.EventWaiting && ev.Apply.Message != "" {
				e.emit(Event{App: ev.App, Message: fmt.Sprintf("%s: %s", ev.Apply.Object.ShortString(), ev.Apply.Message), Note: true})
			}
		case deploy.EventRetry:
			e.emit(Event{App: ev.App, Message: ev.App + ": " + ev.Message, Note: true})
		case deploy.EventAppDone:
			if t, ok := started[ev.App]; ok {
				e.emit(Event{App: ev.App, Message: "deploy " + ev.App, Done: true, Elapsed: time.Since(t), Err: ev.Result.Err})
			}
		}
	}
}

// dependants lists the apps that use app (as a shared dependency), from the lock.
func dependants(lock *workspace.Lock, app string) []string {
	var out []string
	for _, in := range lock.Instances {
		k, err := workspace.ParseInstanceKey(in.Key)
		if err != nil || k.Role == workspace.RoleShared || k.App == app {
			continue
		}
		for _, target := range in.Dependencies {
			if t, err := workspace.ParseInstanceKey(target); err == nil && t.IsApp() && t.DeployedBy() == app {
				out = append(out, k.App)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Plan reports, per app in dependency order, what Deploy would change in the
// cluster: the engine's plan of each app's objects at HEAD, pruning included.
// It changes nothing.
func (e *Env) Plan(ctx context.Context, names ...string) ([]*apply.Result, error) {
	h, err := e.readHead(ctx)
	if err != nil {
		return nil, err
	}
	apps, err := h.apps(names)
	if err != nil {
		return nil, err
	}
	eng, err := e.engine()
	if err != nil {
		return nil, err
	}
	var out []*apply.Result
	for _, a := range apps {
		if a.Err != nil {
			return nil, fmt.Errorf("planning app %s: %w", a.Name, a.Err)
		}
		objs, err := deploy.StripIgnoredFields(a.Objects)
		if err != nil {
			return nil, err
		}
		r, err := eng.Plan(ctx, objs, apply.PlanOptions{App: a.Name, Namespace: a.Namespace, Prune: true})
		if err != nil {
			return nil, fmt.Errorf("planning app %s: %w", a.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// UnreachableError means the workspace's cluster did not answer.
type UnreachableError struct {
	Host string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the cluster at %s: %v; start it, or fix cluster in %s", e.Host, e.Err, workspace.ConfigFile)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// CheckCluster fails with a clear error when the target cluster cannot be
// reached, so that commands can refuse before they change the workspace.
func (e *Env) CheckCluster(ctx context.Context) error {
	cfg, err := e.clusterConfig()
	if err != nil {
		return err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 10 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	if _, err := dc.ServerVersion(); err != nil {
		return &UnreachableError{Host: cfg.Host, Err: err}
	}
	return nil
}
