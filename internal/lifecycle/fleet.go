package lifecycle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/placement"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/workspace"
)

// A fleet workspace (berth.yaml clusters:) renders each app once per cluster
// it is placed on, under rendered/CLUSTER/APP/. Everything here runs only
// when the workspace has clusters; a workspace without keeps rendered/APP/.

// Refusal is a cluster an app was not rendered for, because the cluster does
// not serve one of the app's kinds; the other clusters proceed.
type Refusal struct {
	App     string `json:"app"`
	Cluster string `json:"cluster"`
	Reason  string `json:"reason"`
}

// fleetTargets places every app of p: the user's apps by their placement,
// shared dependencies on every cluster one of their dependants runs on.
func (e *Env) fleetTargets(ctx context.Context, p *plan) (map[string][]placement.Target, error) {
	out := map[string][]placement.Target{}
	for _, name := range slices.Sorted(maps.Keys(p.apps)) {
		a := p.apps[name]
		if a.Shared {
			continue
		}
		if err := e.checkOverrides(ctx, p, a); err != nil {
			return nil, err
		}
		ts, err := placement.Place(e.WS.Config.Clusters, name, a.Placement)
		if err != nil {
			return nil, err
		}
		out[name] = ts
	}
	// A shared instance runs where its users run; users of users count too.
	users := map[string][]string{}
	for _, in := range p.solution.Instances {
		owner := appOfKey(in.Key)
		for _, dep := range in.Dependencies {
			if strings.HasPrefix(dep, "shared:") {
				name, _ := sharedAppName(p, dep)
				users[name] = append(users[name], owner)
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for shared, us := range users {
			have := map[string]bool{}
			for _, t := range out[shared] {
				have[t.Cluster] = true
			}
			for _, u := range us {
				for _, t := range out[u] {
					if !have[t.Cluster] {
						have[t.Cluster] = true
						out[shared] = append(out[shared], placement.Target{Cluster: t.Cluster})
						changed = true
					}
				}
			}
			sort.Slice(out[shared], func(i, j int) bool { return out[shared][i].Cluster < out[shared][j].Cluster })
		}
	}
	return out, nil
}

// appOfKey is the app that deploys a lock instance: "app:web/db" -> web,
// "shared:redis" -> the shared app of redis.
func appOfKey(key string) string {
	if rest, ok := strings.CutPrefix(key, "app:"); ok {
		owner, _, _ := strings.Cut(rest, "/")
		return owner
	}
	return ""
}

func sharedAppName(p *plan, key string) (string, bool) {
	for name, a := range p.apps {
		if a.Shared && "shared:"+a.Package == key {
			return name, true
		}
	}
	return strings.TrimPrefix(key, "shared:"), false
}

// checkOverrides refuses an override of a value the app's package does not
// have: a top-level key must be a parameter, or a dependency's name holding
// that component's values.
func (e *Env) checkOverrides(ctx context.Context, p *plan, a *workspace.App) error {
	if a.Placement == nil || len(a.Placement.Overrides) == 0 {
		return nil
	}
	in, ok := p.solution.Get(resolve.AppKey(a.Name))
	if !ok {
		return nil
	}
	f, err := e.Catalogs.Find(ctx, in.Package)
	if err != nil {
		return err
	}
	pkg, _, err := e.Catalogs.Load(ctx, f, in.Version)
	if err != nil {
		return err
	}
	for i, o := range a.Placement.Overrides {
		for _, k := range slices.Sorted(maps.Keys(o.Values)) {
			if _, ok := pkg.Param(k); ok {
				continue
			}
			if _, isMap := o.Values[k].(map[string]any); isMap && slices.ContainsFunc(pkg.Dependencies, func(d pkgspec.Dependency) bool { return d.Key() == k }) {
				continue // a component's values, checked when it renders
			}
			var names []string
			for _, q := range pkg.Config {
				names = append(names, q.Name)
			}
			where := strings.Join(o.Clusters, ", ")
			if o.Selector != nil {
				where = "the clusters its selector matches"
			}
			return fmt.Errorf("app %s: %s: placement.overrides[%d].values.%s (for %s): not a parameter of package %s %s (its parameters: %s)",
				a.Name, path.Join(workspace.AppDir(a.Name), workspace.AppFile), i, k, where, in.Package, in.Version, strings.Join(names, ", "))
		}
	}
	return nil
}

// writeFleetPlan renders the named apps of p once per cluster they are
// placed on, checking each cluster's API first; a cluster that lacks one
// of an app's kinds is refused for that app and keeps what it had. With
// Preflight, every cluster that gets new objects checks them (in parallel)
// before anything is written.
func (e *Env) writeFleetPlan(ctx context.Context, p *plan, names []string) ([]Refusal, error) {
	targets, err := e.fleetTargets(ctx, p)
	if err != nil {
		return nil, err
	}
	for _, c := range e.WS.Config.Clusters {
		// Each cluster's directory exists, so that a commit can name it.
		if err := e.WS.WriteFile(path.Join(workspace.RenderedDir, c.Name, ".keep"), nil); err != nil {
			return nil, err
		}
	}
	writes, refused, err := e.renderFleet(ctx, p, names, targets)
	if err != nil {
		return nil, err
	}
	if e.Preflight {
		if err := e.preflightFleet(ctx, p, writes); err != nil {
			return nil, err
		}
	}
	for _, c := range e.WS.Config.Clusters {
		for _, name := range names {
			if objs, ok := writes[c.Name][name]; ok {
				if _, err := e.WS.WriteRenderedIn(ctx, c.Name, name, objs); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, name := range names {
		placed := map[string]bool{}
		for _, t := range targets[name] {
			placed[t.Cluster] = true
		}
		for _, c := range e.WS.Config.Clusters {
			if !placed[c.Name] {
				if err := os.RemoveAll(e.WS.Abs(workspace.AppRenderedDirIn(c.Name, name))); err != nil {
					return nil, err
				}
			}
		}
		// What the app rendered before the workspace had clusters.
		if err := os.RemoveAll(e.WS.Abs(workspace.AppRenderedDir(name))); err != nil {
			return nil, err
		}
	}
	lock, err := e.lockOf(ctx, p)
	if err != nil {
		return nil, err
	}
	return refused, e.WS.WriteLock(lock)
}

// fleetWrites are the objects a fleet write renders, by cluster and app.
type fleetWrites map[string]map[string][]*unstructured.Unstructured

// renderFleet renders the named apps for the clusters they are placed on
// (writing their app files and first secrets, which rendering reads): a
// cluster of a later stage only from the source promoted into it, a
// cluster that does not serve one of the app's kinds not at all.
func (e *Env) renderFleet(ctx context.Context, p *plan, names []string, targets map[string][]placement.Target) (fleetWrites, []Refusal, error) {
	apis := &clusterAPIs{env: e, served: map[string]*servedKinds{}}
	stages, err := e.stages()
	if err != nil {
		return nil, nil, err
	}
	writes := fleetWrites{}
	var refused []Refusal
	for _, name := range names {
		a := p.apps[name]
		if err := e.WS.WriteApp(a); err != nil {
			return nil, nil, err
		}
		if _, err := e.WS.ReadFile(secretsPath(name)); err != nil {
			s, err := e.initialSecrets(a.Namespace, name, a.Package, nil)
			if err != nil {
				return nil, nil, err
			}
			if err := e.writeSecrets(ctx, name, s); err != nil {
				return nil, nil, err
			}
		}
		source, err := e.sourceDigest(p, a)
		if err != nil {
			return nil, nil, err
		}
		promoted, err := e.WS.ReadPromotions(name)
		if err != nil {
			return nil, nil, err
		}
		for _, t := range targets[name] {
			if stage, ok := stages.laterStage(t.Cluster); ok && promoted.Stages[stage].Source != source {
				continue // a later stage keeps what was promoted into it
			}
			objs, err := e.renderFor(ctx, p, a, t)
			if err != nil {
				return nil, nil, err
			}
			for _, o := range objs {
				ann := o.GetAnnotations()
				if ann == nil {
					ann = map[string]string{}
				}
				ann[workspace.AnnotationSource] = source
				o.SetAnnotations(ann)
			}
			if reason, err := apis.refuse(ctx, t.Cluster, objs); err != nil {
				return nil, nil, err
			} else if reason != "" {
				refused = append(refused, Refusal{App: name, Cluster: t.Cluster, Reason: reason})
				continue
			}
			if writes[t.Cluster] == nil {
				writes[t.Cluster] = map[string][]*unstructured.Unstructured{}
			}
			writes[t.Cluster][name] = objs
		}
	}
	return writes, refused, nil
}

// renderFor renders a for one cluster, with the values its placement's
// overrides set there winning over every other value, and the Kubernetes
// version and API versions recorded for the cluster in berth.yaml.
func (e *Env) renderFor(ctx context.Context, p *plan, a *workspace.App, t placement.Target) ([]*unstructured.Unstructured, error) {
	var to renderTarget
	if c, ok := e.WS.Config.FleetCluster(t.Cluster); ok {
		to = kubernetesTarget(c.Kubernetes)
	}
	to.override = t.Values
	var objs []*unstructured.Unstructured
	err := e.step(a.Name, "render "+a.Name+" for cluster "+t.Cluster, func() error {
		var err error
		objs, err = e.renderAppWith(ctx, p, a, to)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", t.Cluster, err)
		}
		return nil
	})
	return objs, err
}

// fleetPaths lists the paths a fleet write may change: every cluster's
// rendered directory (created by the write when missing, see
// writeFleetPlan), and the named apps' directories from before the
// workspace had clusters, where they exist.
func (e *Env) fleetPaths(names []string) []string {
	var out []string
	for _, c := range e.WS.Config.Clusters {
		out = append(out, path.Join(workspace.RenderedDir, c.Name))
	}
	for _, n := range names {
		if _, err := os.Stat(e.WS.Abs(workspace.AppRenderedDir(n))); err == nil {
			out = append(out, workspace.AppRenderedDir(n))
		}
	}
	return out
}

// clusterAPIs asks each fleet cluster, once per build, which kinds it serves.
type clusterAPIs struct {
	env    *Env
	served map[string]*servedKinds
}

type servedKinds struct {
	kinds map[schema.GroupVersionKind]bool
	// unreachable: the cluster could not be asked; nothing is refused then.
	unreachable error
}

// refuse returns why cluster cannot take objs: a kind and API version it
// does not serve, and that no CustomResourceDefinition among objs defines.
func (c *clusterAPIs) refuse(ctx context.Context, cluster string, objs []*unstructured.Unstructured) (string, error) {
	if c.env.ClusterOf == nil {
		return "", nil
	}
	s, ok := c.served[cluster]
	if !ok {
		s = c.discover(cluster)
		c.served[cluster] = s
	}
	if s.unreachable != nil {
		return "", nil
	}
	defined := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			g, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			k, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			defined[schema.GroupKind{Group: g, Kind: k}] = true
		}
	}
	var missing []string
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if s.kinds[gvk] || defined[gvk.GroupKind()] {
			continue
		}
		m := gvk.Kind + " " + gvk.GroupVersion().String()
		if !slices.Contains(missing, m) {
			missing = append(missing, m)
		}
	}
	if len(missing) == 0 {
		return "", nil
	}
	sort.Strings(missing)
	return fmt.Sprintf("cluster %s does not serve %s", cluster, strings.Join(missing, ", ")), nil
}

func (c *clusterAPIs) discover(cluster string) *servedKinds {
	cfg, err := c.env.ClusterOf(cluster)
	if err != nil {
		return &servedKinds{unreachable: err}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 10 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return &servedKinds{unreachable: err}
	}
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil && len(lists) == 0 {
		return &servedKinds{unreachable: err}
	}
	s := &servedKinds{kinds: map[schema.GroupVersionKind]bool{}}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if !strings.Contains(r.Name, "/") {
				s.kinds[gv.WithKind(r.Kind)] = true
			}
		}
	}
	return s
}

// deployFleet deploys every cluster of a fleet workspace in turn, each the
// apps placed on it, from rendered/CLUSTER/ at HEAD; it stops at the first
// cluster that fails.
func (e *Env) deployFleet(ctx context.Context, opts DeployOptions) (*DeployResult, error) {
	if e.ClusterOf == nil {
		return nil, errors.New("the workspace has clusters, and no way to reach them was given")
	}
	total := &DeployResult{}
	for _, c := range e.WS.Config.Clusters {
		sub := e.ForCluster(c.Name)
		o := opts
		o.Apps = nil
		h, err := sub.readHead(ctx)
		if err != nil {
			return total, err
		}
		for _, a := range opts.Apps {
			if _, ok := h.snap.Apps[a]; ok {
				o.Apps = append(o.Apps, a)
			}
		}
		if len(opts.Apps) > 0 && len(o.Apps) == 0 {
			continue // none of the named apps is placed here
		}
		res, err := sub.Deploy(ctx, o)
		if res != nil {
			total.Apps = append(total.Apps, res.Apps...)
			total.Duration += res.Duration
		}
		if err != nil {
			return total, fmt.Errorf("cluster %s: %w", c.Name, err)
		}
	}
	return total, nil
}

// ForCluster returns the Env of one cluster of a fleet workspace: its
// client, its rendered directory.
func (e *Env) ForCluster(name string) *Env {
	sub := *e
	sub.FleetCluster = name
	sub.refused = nil
	sub.Cluster = func() (*rest.Config, error) {
		if e.ClusterOf == nil {
			return nil, fmt.Errorf("cluster %s: no way to reach it was given", name)
		}
		return e.ClusterOf(name)
	}
	return &sub
}

// CheckClusterWithin is CheckCluster with its own bound on the request.
func (e *Env) CheckClusterWithin(ctx context.Context, d time.Duration) error {
	cfg, err := e.clusterConfig()
	if err != nil {
		return err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = d
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	if err := dc.RESTClient().Get().AbsPath("/version").Do(ctx).Error(); err != nil {
		return &UnreachableError{Host: cfg.Host, Err: err}
	}
	return nil
}

// stageMembers maps each cluster to the environment (stage) it is in: the
// first that names or selects it.
type stageMembers struct {
	index map[string]int
	names []string
}

// laterStage returns the stage of cluster when it is not the first one.
func (s stageMembers) laterStage(cluster string) (string, bool) {
	i, ok := s.index[cluster]
	if !ok || i == 0 {
		return "", false
	}
	return s.names[i], true
}

// stages resolves berth.yaml's environments into their clusters.
func (e *Env) stages() (stageMembers, error) {
	s := stageMembers{index: map[string]int{}}
	for i, env := range e.WS.Config.Environments {
		members, err := placement.Selected(e.WS.Config.Clusters, env.Clusters, env.Selector)
		if err != nil {
			return s, fmt.Errorf("%s: environments[%d] (%s): %w", workspace.ConfigFile, i, env.Name, err)
		}
		s.names = append(s.names, env.Name)
		for _, c := range members {
			if _, seen := s.index[c]; !seen {
				s.index[c] = i
			}
		}
	}
	return s, nil
}

// StageClusters returns the clusters of the environment named stage.
func (e *Env) StageClusters(stage string) ([]string, error) {
	env, _, ok := e.WS.Config.Environment(stage)
	if !ok {
		return nil, fmt.Errorf("%s has no environment %q", workspace.ConfigFile, stage)
	}
	s, err := e.stages()
	if err != nil {
		return nil, err
	}
	var out []string
	for c, i := range s.index {
		if s.names[i] == env.Name {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out, nil
}

// sourceDigest is the digest of what an app is rendered from: its app.yaml,
// the user's values.yaml and the versions its lock instances resolve to.
func (e *Env) sourceDigest(p *plan, a *workspace.App) (string, error) {
	h := sha256.New()
	data, err := yaml.Marshal(a)
	if err != nil {
		return "", err
	}
	h.Write(data)
	user, err := e.WS.ReadFile(path.Join(workspace.AppDir(a.Name), workspace.ValuesFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	h.Write([]byte{0})
	h.Write(user)
	for _, in := range p.solution.Instances {
		if in.Key == resolve.AppKey(a.Name) || strings.HasPrefix(in.Key, resolve.AppKey(a.Name)+"/") {
			fmt.Fprintf(h, "\x00%s=%s@%s", in.Key, in.Package, in.Version)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:32], nil
}

// PromoteOptions is a promotion that fleet.Promote has checked.
type PromoteOptions struct {
	App    string
	From   string
	To     string
	Source string
	// Message is the commit message, with the evidence.
	Message string
}

// Promote records that Source moves into stage To and renders the app for
// To's clusters, as one commit. It fails, changing nothing, when the app's
// source at HEAD is no longer Source (a change since the check).
func (e *Env) Promote(ctx context.Context, opts PromoteOptions) (*BuildResult, error) {
	release, err := e.writing(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	apps, lock, err := e.appsWith(opts.App)
	if err != nil {
		return nil, err
	}
	p, err := e.solve(ctx, apps, lock, nil)
	if err != nil {
		return nil, err
	}
	if d, err := e.sourceDigest(p, p.apps[opts.App]); err != nil {
		return nil, err
	} else if d != opts.Source {
		return nil, fmt.Errorf("app %s changed since its evidence was read (source %s, now %s): build it and promote again", opts.App, opts.Source, d)
	}
	names := []string{opts.App}
	paths := append(e.allPaths(p, names), path.Join(workspace.AppDir(opts.App), workspace.PromotionsFile))
	committed, err := e.WS.ChangeCommitted(ctx, opts.Message, paths, func() error {
		promos, err := e.WS.ReadPromotions(opts.App)
		if err != nil {
			return err
		}
		if promos.Stages == nil {
			promos.Stages = map[string]workspace.Promotion{}
		}
		promos.Stages[opts.To] = workspace.Promotion{Source: opts.Source, From: opts.From, At: time.Now().UTC().Truncate(time.Second)}
		if err := e.WS.WritePromotions(opts.App, promos); err != nil {
			return err
		}
		return e.writePlan(ctx, p, names)
	})
	if err != nil {
		return nil, err
	}
	return &BuildResult{Apps: names, Committed: committed, Refused: e.refused}, nil
}

// renderedDirsOf lists an app's rendered directories of every cluster and
// from before the workspace had clusters.
func (e *Env) renderedDirsOf(app string) []string {
	out := []string{workspace.AppRenderedDir(app)}
	for _, c := range e.WS.Config.Clusters {
		out = append(out, workspace.AppRenderedDirIn(c.Name, app))
	}
	return out
}

// existing keeps the paths that exist now.
func (e *Env) existing(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(e.WS.Abs(p)); err == nil {
			out = append(out, p)
		}
	}
	return out
}
