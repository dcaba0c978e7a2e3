package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/workspace"
)

// DeployOptions configures Deploy.
type DeployOptions struct {
	// Apps to deploy, with the apps they depend on; all when empty.
	Apps []string
	// Timeout bounds each app's wait for health.
	Timeout time.Duration
}

// AppDeploy is what deploying one app did.
type AppDeploy struct {
	App       string         `json:"app"`
	Namespace string         `json:"namespace"`
	Actions   map[string]int `json:"actions"` // create, update, unchanged, delete...
	Duration  time.Duration  `json:"durationNanos"`
}

// DeployResult lists the apps deployed, in order.
type DeployResult struct {
	Apps []AppDeploy `json:"apps"`
}

// UnhealthyError says which app did not become healthy, and why; the apps after
// it were not deployed.
type UnhealthyError struct {
	App     string
	Skipped []string
	Err     error
}

func (e *UnhealthyError) Error() string {
	msg := fmt.Sprintf("app %s did not deploy: %v", e.App, e.Err)
	if len(e.Skipped) > 0 {
		msg += fmt.Sprintf("; not deployed after it: %s", strings.Join(e.Skipped, ", "))
	}
	return msg
}

func (e *UnhealthyError) Unwrap() error { return e.Err }

// order returns the apps in dependency order (what an app uses first), from
// the lock. With names, only those and what they depend on.
func order(lock *workspace.Lock, apps map[string]*workspace.App, names []string) ([]string, error) {
	deps := map[string][]string{}
	for _, in := range lock.Instances {
		owner, _, _ := strings.Cut(strings.TrimPrefix(in.Key, "app:"), "/")
		if !strings.HasPrefix(in.Key, "app:") {
			continue
		}
		for _, target := range in.Dependencies {
			if strings.HasPrefix(target, "shared:") {
				deps[owner] = append(deps[owner], strings.TrimPrefix(target, "shared:"))
			}
		}
	}
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(apps))
	}
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("apps depend on each other in a circle: %s", strings.Join(append(path, n), " -> "))
		case 2:
			return nil
		}
		if _, ok := apps[n]; !ok {
			return fmt.Errorf("%w: no app %q in this workspace; 'berth status' lists the installed apps", workspace.ErrAppNotFound, n)
		}
		state[n] = 1
		ds := slices.Clone(deps[n])
		slices.Sort(ds)
		for _, d := range slices.Compact(ds) {
			if err := visit(d, append(path, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
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

// Deploy applies the workspace's rendered apps to the cluster in dependency
// order. Each app goes phase by phase (components, then its own hooks and
// objects), each phase healthy before the next, pruning what the app no longer
// renders; an app that does not become healthy stops the deploy. Unchanged apps
// cost no writes.
func (e *Env) Deploy(ctx context.Context, opts DeployOptions) (*DeployResult, error) {
	apps, err := e.workspaceApps()
	if err != nil {
		return nil, err
	}
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, err
	}
	names, err := order(lock, apps, opts.Apps)
	if err != nil {
		return nil, err
	}
	eng, err := e.engine()
	if err != nil {
		return nil, err
	}
	res := &DeployResult{}
	for i, name := range names {
		d, err := e.deployApp(ctx, eng, apps[name], opts.Timeout)
		if err != nil {
			return res, &UnhealthyError{App: name, Skipped: names[i+1:], Err: err}
		}
		res.Apps = append(res.Apps, *d)
	}
	return res, nil
}

func (e *Env) deployApp(ctx context.Context, eng *apply.Engine, a *workspace.App, timeout time.Duration) (*AppDeploy, error) {
	objs, err := e.WS.ReadRendered(a.Name)
	if err != nil {
		return nil, err
	}
	d := &AppDeploy{App: a.Name, Namespace: a.Namespace, Actions: map[string]int{}}
	start := time.Now()
	phases := Phases(objs)
	var set []*unstructured.Unstructured
	err = e.step(a.Name, "deploy "+a.Name, func() error {
		for i, ph := range phases {
			set = append(set, ph...)
			last := i == len(phases)-1
			r, err := eng.Apply(ctx, set, apply.ApplyOptions{
				App: a.Name, Namespace: a.Namespace, Prune: last, Wait: true, Timeout: timeout,
				Events: e.applyEvents(a.Name),
			})
			if err != nil {
				return err
			}
			if last {
				for _, c := range r.Changes {
					d.Actions[string(c.Action)]++
				}
			}
		}
		if len(phases) == 0 {
			// Nothing rendered: prune whatever an earlier deploy left.
			r, err := eng.Apply(ctx, nil, apply.ApplyOptions{App: a.Name, Namespace: a.Namespace, Prune: true})
			if err != nil {
				return err
			}
			for _, c := range r.Changes {
				d.Actions[string(c.Action)]++
			}
		}
		return nil
	})
	d.Duration = time.Since(start)
	return d, err
}

// applyEvents turns the engine's waiting messages into progress.
func (e *Env) applyEvents(app string) func(apply.Event) {
	if e.Events == nil {
		return nil
	}
	return func(ev apply.Event) {
		if ev.Type == apply.EventWaiting && ev.Message != "" {
			e.emit(Event{App: app, Message: fmt.Sprintf("%s: %s", ev.Object.ShortString(), ev.Message), Note: true})
		}
	}
}

// dependants lists the apps that use app (as a shared dependency), from the lock.
func dependants(lock *workspace.Lock, app string) []string {
	var out []string
	for _, in := range lock.Instances {
		if !strings.HasPrefix(in.Key, "app:") {
			continue
		}
		owner, _, _ := strings.Cut(strings.TrimPrefix(in.Key, "app:"), "/")
		if owner == app {
			continue
		}
		for _, target := range in.Dependencies {
			if target == "shared:"+app || target == resolve.AppKey(app) {
				out = append(out, owner)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Plan reports, per app in dependency order, what Deploy would change in the
// cluster: the engine's plan of each app's rendered objects, pruning included.
// It changes nothing.
func (e *Env) Plan(ctx context.Context, names ...string) ([]*apply.Result, error) {
	apps, err := e.workspaceApps()
	if err != nil {
		return nil, err
	}
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, err
	}
	ordered, err := order(lock, apps, names)
	if err != nil {
		return nil, err
	}
	eng, err := e.engine()
	if err != nil {
		return nil, err
	}
	var out []*apply.Result
	for _, name := range ordered {
		a := apps[name]
		objs, err := e.WS.ReadRendered(name)
		if err != nil {
			return nil, err
		}
		r, err := eng.Plan(ctx, objs, apply.PlanOptions{App: name, Namespace: a.Namespace, Prune: true})
		if err != nil {
			return nil, fmt.Errorf("planning app %s: %w", name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

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
		return fmt.Errorf("cannot reach the cluster at %s: %w; start it ('berth up') or fix cluster in berth.yaml, or pass --no-deploy", cfg.Host, err)
	}
	return nil
}
