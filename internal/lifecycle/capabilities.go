package lifecycle

import (
	"path"
	"strings"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
)

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
