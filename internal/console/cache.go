package console

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	kcache "k8s.io/client-go/tools/cache"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/health"
)

// watched are the kinds of berth-labelled objects the cache keeps: the ones
// whose health means something. Objects of other kinds (and Secrets, whose
// values the console never holds) appear in an app's tree from git alone.
var watched = []schema.GroupVersionResource{
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"},
	{Group: "apps", Version: "v1", Resource: "daemonsets"},
	{Group: "batch", Version: "v1", Resource: "jobs"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "persistentvolumeclaims"},
	{Version: "v1", Resource: "serviceaccounts"},
	{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
}

var (
	podsGVR        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	replicaSetsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
	eventsGVR      = schema.GroupVersionResource{Version: "v1", Resource: "events"}
	workspacesGVR  = berthv1.GroupVersion.WithResource("workspaces")
	wsAppsGVR      = berthv1.GroupVersion.WithResource("workspaceapps")
	incidentsGVR   = berthv1.GroupVersion.WithResource("incidents")
)

const (
	byApp      = "app"
	byOwner    = "owner"
	byInvolved = "involved"
)

// clusterCache is the console's view of the cluster: informers over the
// kinds it shows, indexed by app, owner and involved object, so that a page
// reads memory and never lists the cluster.
type clusterCache struct {
	labelled map[schema.GroupVersionResource]kcache.SharedIndexInformer
	kinds    map[schema.GroupKind]schema.GroupVersionResource
	pods     kcache.SharedIndexInformer
	rsets    kcache.SharedIndexInformer
	events   kcache.SharedIndexInformer
	// workspaces is nil when the cluster has no Workspace API.
	workspaces kcache.SharedIndexInformer
	// wsApps holds the WorkspaceApps: each app's state as the controller
	// reports it.
	wsApps kcache.SharedIndexInformer
	// incidents is nil when the cluster has no Incident API.
	incidents kcache.SharedIndexInformer
	onChange  func()
}

func indexApp(obj any) ([]string, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil
	}
	if a, ok := m.GetLabels()[apply.LabelApp]; ok {
		return []string{a}, nil
	}
	return nil, nil
}

func indexOwner(obj any) ([]string, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil
	}
	var out []string
	for _, o := range m.GetOwnerReferences() {
		out = append(out, string(o.UID))
	}
	return out, nil
}

func indexInvolved(obj any) ([]string, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil
	}
	uid, _, _ := unstructured.NestedString(u.Object, "involvedObject", "uid")
	if uid == "" {
		return nil, nil
	}
	return []string{uid}, nil
}

// newClusterCache starts informers over cfg's cluster and waits until they
// have synced. onChange is called (from informer goroutines) after any change.
func newClusterCache(ctx context.Context, cfg *rest.Config, onChange func()) (*clusterCache, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	c := &clusterCache{labelled: map[schema.GroupVersionResource]kcache.SharedIndexInformer{}, kinds: map[schema.GroupKind]schema.GroupVersionResource{}, onChange: onChange}
	labelled := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 10*time.Minute, "", func(o *metav1.ListOptions) { o.LabelSelector = apply.LabelApp })
	all := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 10*time.Minute)
	handler := kcache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.changed() },
		UpdateFunc: func(any, any) { c.changed() },
		DeleteFunc: func(any) { c.changed() },
	}
	add := func(inf kcache.SharedIndexInformer, idx kcache.Indexers) error {
		if err := inf.AddIndexers(idx); err != nil {
			return err
		}
		_, err := inf.AddEventHandler(handler)
		return err
	}
	for _, gvr := range watched {
		inf := labelled.ForResource(gvr).Informer()
		if err := add(inf, kcache.Indexers{byApp: indexApp}); err != nil {
			return nil, err
		}
		c.labelled[gvr] = inf
	}
	c.pods = all.ForResource(podsGVR).Informer()
	c.rsets = all.ForResource(replicaSetsGVR).Informer()
	c.events = all.ForResource(eventsGVR).Informer()
	for _, inf := range []kcache.SharedIndexInformer{c.pods, c.rsets} {
		if err := add(inf, kcache.Indexers{byOwner: indexOwner}); err != nil {
			return nil, err
		}
	}
	if err := add(c.events, kcache.Indexers{byInvolved: indexInvolved}); err != nil {
		return nil, err
	}
	if res, err := disc.ServerResourcesForGroupVersion(berthv1.GroupVersion.String()); err == nil && len(res.APIResources) > 0 {
		c.workspaces = all.ForResource(workspacesGVR).Informer()
		infs := []kcache.SharedIndexInformer{c.workspaces}
		for _, r := range res.APIResources {
			// A cluster bootstrapped by an older berth has no WorkspaceApps.
			switch r.Name {
			case wsAppsGVR.Resource:
				c.wsApps = all.ForResource(wsAppsGVR).Informer()
				infs = append(infs, c.wsApps)
			case incidentsGVR.Resource:
				c.incidents = all.ForResource(incidentsGVR).Informer()
				infs = append(infs, c.incidents)
			}
		}
		for _, inf := range infs {
			if _, err := inf.AddEventHandler(handler); err != nil {
				return nil, err
			}
		}
	}
	if rl, err := disc.ServerPreferredResources(); err == nil || discovery.IsGroupDiscoveryFailedError(err) {
		for _, l := range rl {
			gv, _ := schema.ParseGroupVersion(l.GroupVersion)
			for _, r := range l.APIResources {
				gvr := gv.WithResource(r.Name)
				if _, ok := c.labelled[gvr]; ok {
					c.kinds[schema.GroupKind{Group: gv.Group, Kind: r.Kind}] = gvr
				}
			}
		}
	}
	labelled.Start(ctx.Done())
	all.Start(ctx.Done())
	for gvr, ok := range labelled.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil, fmt.Errorf("the console's cache of %s did not sync", gvr.Resource)
		}
	}
	for gvr, ok := range all.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil, fmt.Errorf("the console's cache of %s did not sync", gvr.Resource)
		}
	}
	return c, nil
}

func (c *clusterCache) changed() {
	if c.onChange != nil {
		c.onChange()
	}
}

// workspace returns the named Workspace as the cache has it, or nil.
func (c *clusterCache) workspace(namespace, name string) *berthv1.Workspace {
	if c == nil || c.workspaces == nil {
		return nil
	}
	o, ok, err := c.workspaces.GetStore().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil
	}
	var ws berthv1.Workspace
	if runtime.DefaultUnstructuredConverter.FromUnstructured(o.(*unstructured.Unstructured).Object, &ws) != nil {
		return nil
	}
	return &ws
}

// appStates returns the state of each app of the Workspace namespace/name
// from its WorkspaceApp, by app name.
func (c *clusterCache) appStates(namespace, name string) map[string]*berthv1.AppStatus {
	out := map[string]*berthv1.AppStatus{}
	if c == nil || c.wsApps == nil {
		return out
	}
	for _, o := range c.wsApps.GetStore().List() {
		u := o.(*unstructured.Unstructured)
		if u.GetNamespace() != namespace || u.GetLabels()[berthv1.LabelWorkspace] != name {
			continue
		}
		var a berthv1.WorkspaceApp
		if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &a) == nil {
			out[a.Spec.App] = &a.Status
		}
	}
	return out
}

// liveObject is an object of an app as the cache has it.
type liveObject struct {
	obj    *unstructured.Unstructured
	health health.Result
}

// appObjects returns the live objects labelled as app's, by "Kind/namespace/name".
func (c *clusterCache) appObjects(app string) map[string]liveObject {
	out := map[string]liveObject{}
	if c == nil {
		return out
	}
	for _, inf := range c.labelled {
		items, _ := inf.GetIndexer().ByIndex(byApp, app)
		for _, it := range items {
			u := it.(*unstructured.Unstructured)
			out[objectKey(u.GroupVersionKind().GroupKind(), u.GetNamespace(), u.GetName())] = liveObject{obj: u, health: health.Compute(u)}
		}
	}
	return out
}

// watches reports whether the cache keeps objects of gk.
func (c *clusterCache) watches(gk schema.GroupKind) bool {
	if c == nil {
		return false
	}
	_, ok := c.kinds[gk]
	return ok
}

// podsOf returns the pods a workload runs (directly, or through its
// ReplicaSets), sorted by name.
func (c *clusterCache) podsOf(workload *unstructured.Unstructured) []*unstructured.Unstructured {
	if c == nil {
		return nil
	}
	owners := []string{string(workload.GetUID())}
	if workload.GetKind() == "Deployment" {
		rs, _ := c.rsets.GetIndexer().ByIndex(byOwner, string(workload.GetUID()))
		for _, r := range rs {
			owners = append(owners, string(r.(*unstructured.Unstructured).GetUID()))
		}
	}
	var out []*unstructured.Unstructured
	for _, uid := range owners {
		ps, _ := c.pods.GetIndexer().ByIndex(byOwner, uid)
		for _, p := range ps {
			out = append(out, p.(*unstructured.Unstructured))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// eventsOf returns the Events about the given objects, newest first.
func (c *clusterCache) eventsOf(uids ...string) []*unstructured.Unstructured {
	if c == nil {
		return nil
	}
	var out []*unstructured.Unstructured
	for _, uid := range uids {
		es, _ := c.events.GetIndexer().ByIndex(byInvolved, uid)
		for _, e := range es {
			out = append(out, e.(*unstructured.Unstructured))
		}
	}
	when := func(u *unstructured.Unstructured) string {
		for _, f := range []string{"lastTimestamp", "eventTime"} {
			if s, _, _ := unstructured.NestedString(u.Object, f); s != "" {
				return s
			}
		}
		return u.GetCreationTimestamp().UTC().Format(time.RFC3339)
	}
	sort.Slice(out, func(i, j int) bool { return when(out[i]) > when(out[j]) })
	return out
}

func objectKey(gk schema.GroupKind, namespace, name string) string {
	k := gk.Kind
	if gk.Group != "" {
		k += "." + gk.Group
	}
	return strings.Join([]string{k, namespace, name}, "/")
}

// incidentsOf returns the Incidents of namespace (all when empty) about app
// (all apps when empty), most recently seen first.
func (c *clusterCache) incidentsOf(namespace, app string) []berthv1.Incident {
	if c == nil || c.incidents == nil {
		return nil
	}
	var out []berthv1.Incident
	for _, o := range c.incidents.GetStore().List() {
		u := o.(*unstructured.Unstructured)
		if namespace != "" && u.GetNamespace() != namespace {
			continue
		}
		var inc berthv1.Incident
		if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &inc) != nil {
			continue
		}
		if app != "" && inc.Spec.App != app {
			continue
		}
		out = append(out, inc)
	}
	last := func(i berthv1.Incident) time.Time {
		if i.Status.LastSeen != nil {
			return i.Status.LastSeen.Time
		}
		return i.CreationTimestamp.Time
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := last(out[i]), last(out[j]); !a.Equal(b) {
			return a.After(b)
		}
		return out[i].Name < out[j].Name
	})
	return out
}
