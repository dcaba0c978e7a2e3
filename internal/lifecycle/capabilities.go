package lifecycle

import (
	"context"
	"path"
	"strings"
	"time"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/workspace"
)

// ReadKubernetes reads a cluster's Kubernetes version and the API versions
// it serves, as charts rendered for it see them in .Capabilities.
func ReadKubernetes(ctx context.Context, cfg *rest.Config) (*workspace.ClusterKubernetes, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return nil, err
	}
	versions, err := render.ServedAPIVersions(dc)
	if err != nil {
		return nil, err
	}
	return &workspace.ClusterKubernetes{Version: v.GitVersion, APIVersions: versions}, nil
}

// targetKubernetes is what the renders of a one-cluster workspace give
// charts in .Capabilities: the cluster's Kubernetes version and served API
// versions, read from it when it answers within a few seconds, else as
// berth.lock recorded them the last time it did (nil: berth's defaults). A
// fleet records each cluster's in berth.yaml instead (renderFor).
func (e *Env) targetKubernetes(ctx context.Context, lock *workspace.Lock) *workspace.ClusterKubernetes {
	if e.WS.Config.IsFleet() {
		return nil
	}
	if e.Cluster != nil {
		if cfg, err := e.clusterConfig(); err == nil {
			cfg = rest.CopyConfig(cfg)
			cfg.Timeout = 5 * time.Second
			if k, err := ReadKubernetes(ctx, cfg); err == nil {
				return k
			}
		}
	}
	if lock != nil {
		return lock.Kubernetes
	}
	return nil
}

// kubernetesTarget is the render target of a cluster whose Kubernetes is k.
func kubernetesTarget(k *workspace.ClusterKubernetes) renderTarget {
	var to renderTarget
	if k != nil {
		to.kubeVersion = k.Version
		if len(k.APIVersions) > 0 {
			to.discovery = recordedAPIs(k.APIVersions)
		}
	}
	return to
}

// recordedAPIs answers discovery from the API versions recorded for a
// fleet cluster in berth.yaml (render.ServedAPIVersions' list: group/version
// and group/version/Kind), so charts see exactly what the cluster served
// when it was recorded, without reaching it.
type recordedAPIs []string

var _ discovery.ServerResourcesInterface = recordedAPIs(nil)

// split returns the group versions and the resources by group version.
func (r recordedAPIs) split() ([]*metav1.APIGroup, []*metav1.APIResourceList) {
	var groups []*metav1.APIGroup
	kinds := map[string]*metav1.APIResourceList{}
	var order []string
	for _, v := range r {
		gv, kind := path.Split(v)
		if gv == "" || !startsUpper(kind) {
			groups = append(groups, &metav1.APIGroup{Versions: []metav1.GroupVersionForDiscovery{{GroupVersion: v}}})
			continue
		}
		gv = strings.TrimSuffix(gv, "/")
		l, ok := kinds[gv]
		if !ok {
			l = &metav1.APIResourceList{GroupVersion: gv}
			kinds[gv] = l
			order = append(order, gv)
		}
		l.APIResources = append(l.APIResources, metav1.APIResource{Name: strings.ToLower(kind), Kind: kind})
	}
	lists := make([]*metav1.APIResourceList, len(order))
	for i, gv := range order {
		lists[i] = kinds[gv]
	}
	return groups, lists
}

func startsUpper(s string) bool {
	for _, c := range s {
		return unicode.IsUpper(c)
	}
	return false
}

func (r recordedAPIs) ServerGroupsAndResources() ([]*metav1.APIGroup, []*metav1.APIResourceList, error) {
	g, l := r.split()
	return g, l, nil
}

func (r recordedAPIs) ServerResourcesForGroupVersion(groupVersion string) (*metav1.APIResourceList, error) {
	_, lists := r.split()
	for _, l := range lists {
		if l.GroupVersion == groupVersion {
			return l, nil
		}
	}
	return &metav1.APIResourceList{GroupVersion: groupVersion}, nil
}

func (r recordedAPIs) ServerPreferredResources() ([]*metav1.APIResourceList, error) {
	_, l := r.split()
	return l, nil
}

func (r recordedAPIs) ServerPreferredNamespacedResources() ([]*metav1.APIResourceList, error) {
	_, l := r.split()
	return l, nil
}
