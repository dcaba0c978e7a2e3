package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilversion "k8s.io/apimachinery/pkg/util/version"
)

// ClusterEntry is one cluster of a fleet workspace (berth.yaml clusters:):
// where to reach it, its labels for placement, and its network ranges.
type ClusterEntry struct {
	Name       string            `json:"name"`
	Kubeconfig string            `json:"kubeconfig,omitempty"`
	Context    string            `json:"context,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Network    ClusterNetwork    `json:"network,omitempty"`
	// Kubernetes is what charts rendered for the cluster see in
	// .Capabilities, as 'berth cluster add' read it from the cluster, so a
	// render without the cluster reachable is the same; nil renders with
	// the defaults of a workspace without clusters.
	Kubernetes *ClusterKubernetes `json:"kubernetes,omitempty"`
}

// ClusterKubernetes is a cluster's Kubernetes version and the API versions
// it serves: group/version and group/version/Kind, as Helm's
// .Capabilities.APIVersions holds them.
type ClusterKubernetes struct {
	Version     string   `json:"version"`
	APIVersions []string `json:"apiVersions,omitempty"`
}

// Ref is where to reach the cluster.
func (c ClusterEntry) Ref() ClusterRef {
	return ClusterRef{Kubeconfig: c.Kubeconfig, Context: c.Context}
}

// ClusterNetwork is a cluster's pod and service address ranges (CIDRs).
type ClusterNetwork struct {
	Pods     []string `json:"pods,omitempty"`
	Services []string `json:"services,omitempty"`
}

// Environment is one stage of promotion (berth.yaml environments:, in
// order): its clusters, by name or label selector, how long a version must
// run healthy there before it may move on, the Job that verifies it, and
// whether moving a version into it needs approval.
type Environment struct {
	Name     string                `json:"name"`
	Clusters []string              `json:"clusters,omitempty"`
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Soak is how long (a Go duration: 30m, 2h) every cluster of this stage
	// must run a revision healthy before it may be promoted from here.
	Soak string `json:"soak,omitempty"`
	// Verify is a Job run in each cluster of this stage; it must complete
	// before a revision may be promoted from here.
	Verify *Verification `json:"verify,omitempty"`
	// RequireApproval: promoting into this stage needs an explicit approval.
	RequireApproval bool `json:"requireApproval,omitempty"`
}

// Verification names a Job manifest (workspace-relative) that verifies a
// stage, and how long it may run.
type Verification struct {
	Job     string `json:"job"`
	Timeout string `json:"timeout,omitempty"`
}

// SoakDuration is the parsed Soak (zero when unset).
func (e Environment) SoakDuration() time.Duration {
	d, _ := time.ParseDuration(e.Soak) // checked by validateFleet
	return d
}

// Placement says which clusters of a fleet run an app: the named clusters or
// those the selector matches (every cluster when both are empty), spread
// over the values of a label, with per-cluster overrides of its values.
type Placement struct {
	Clusters  []string              `json:"clusters,omitempty"`
	Selector  *metav1.LabelSelector `json:"selector,omitempty"`
	Spread    *Spread               `json:"spread,omitempty"`
	Overrides []PlacementOverride   `json:"overrides,omitempty"`
}

// Spread places an app on one cluster per distinct value of the label By,
// on at most Count values.
type Spread struct {
	By    string `json:"by"`
	Count int    `json:"count"`
}

// PlacementOverride sets values for the clusters it names or selects; later
// overrides win over earlier ones.
type PlacementOverride struct {
	Clusters []string              `json:"clusters,omitempty"`
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	Values   map[string]any        `json:"values"`
}

// IsFleet reports whether the workspace has clusters: then apps are rendered
// per cluster under rendered/CLUSTER/APP/.
func (c *Config) IsFleet() bool { return len(c.Clusters) > 0 }

// FleetCluster returns the cluster named name.
func (c *Config) FleetCluster(name string) (ClusterEntry, bool) {
	for _, cl := range c.Clusters {
		if cl.Name == name {
			return cl, true
		}
	}
	return ClusterEntry{}, false
}

// Environment returns the stage named name and its index.
func (c *Config) Environment(name string) (Environment, int, bool) {
	for i, e := range c.Environments {
		if e.Name == name {
			return e, i, true
		}
	}
	return Environment{}, -1, false
}

var clusterNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$`)

// ValidateClusterName checks a fleet cluster's name: it names a directory
// of rendered/, so lowercase letters, digits and '-', at most 40 characters.
func ValidateClusterName(name string) error {
	if !clusterNameRE.MatchString(name) {
		return fmt.Errorf("cluster name %q is invalid: use lowercase letters, digits and '-', at most 40 characters, starting and ending with a letter or digit", name)
	}
	return nil
}

// validateFleet checks clusters: and environments: on their own (selectors
// that match nothing are the placement's and promotion's errors).
func (c *Config) validateFleet() error {
	seen := map[string]bool{}
	for i, cl := range c.Clusters {
		field := fmt.Sprintf("clusters[%d]", i)
		if err := ValidateClusterName(cl.Name); err != nil {
			return fmt.Errorf("%s.name: %w", field, err)
		}
		if seen[cl.Name] {
			return fmt.Errorf("%s.name: cluster %q is listed twice", field, cl.Name)
		}
		seen[cl.Name] = true
		for k, v := range cl.Labels {
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				return fmt.Errorf("%s (%s).labels: key %q: %v", field, cl.Name, k, errs[0])
			}
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				return fmt.Errorf("%s (%s).labels.%s: value %q: %v", field, cl.Name, k, v, errs[0])
			}
		}
		if k := cl.Kubernetes; k != nil {
			if _, err := utilversion.ParseGeneric(k.Version); err != nil {
				return fmt.Errorf("%s (%s).kubernetes.version: %q is not a Kubernetes version (like v1.34.1)", field, cl.Name, k.Version)
			}
		}
		for _, list := range []struct {
			name string
			v    []string
		}{{"pods", cl.Network.Pods}, {"services", cl.Network.Services}} {
			for _, r := range list.v {
				if _, err := netip.ParsePrefix(r); err != nil {
					return fmt.Errorf("%s (%s).network.%s: %q is not a CIDR range", field, cl.Name, list.name, r)
				}
			}
		}
	}
	stages := map[string]bool{}
	for i, e := range c.Environments {
		field := fmt.Sprintf("environments[%d]", i)
		if err := ValidateClusterName(e.Name); err != nil {
			return fmt.Errorf("%s.name: stage %q is invalid: use lowercase letters, digits and dashes", field, e.Name)
		}
		if stages[e.Name] {
			return fmt.Errorf("%s.name: stage %q is listed twice", field, e.Name)
		}
		stages[e.Name] = true
		if len(e.Clusters) > 0 && e.Selector != nil {
			return fmt.Errorf("%s (%s): set clusters or selector, not both", field, e.Name)
		}
		for _, n := range e.Clusters {
			if !seen[n] {
				return fmt.Errorf("%s (%s).clusters: no cluster %q among the clusters", field, e.Name, n)
			}
		}
		if e.Selector != nil {
			if _, err := metav1.LabelSelectorAsSelector(e.Selector); err != nil {
				return fmt.Errorf("%s (%s).selector: %w", field, e.Name, err)
			}
		}
		if e.Soak != "" {
			if d, err := time.ParseDuration(e.Soak); err != nil || d < 0 {
				return fmt.Errorf("%s (%s).soak: %q is not a duration (like 30m or 2h)", field, e.Name, e.Soak)
			}
		}
		if v := e.Verify; v != nil {
			if v.Job == "" || path.IsAbs(v.Job) || !fs.ValidPath(path.Clean(v.Job)) {
				return fmt.Errorf("%s (%s).verify.job: %q must name a Job manifest inside the workspace", field, e.Name, v.Job)
			}
			if _, err := time.ParseDuration(v.Timeout); v.Timeout != "" && err != nil {
				return fmt.Errorf("%s (%s).verify.timeout: %q is not a duration", field, e.Name, v.Timeout)
			}
		}
	}
	return nil
}

// AppRenderedDirIn is the directory of an app's rendered objects for a
// cluster of a fleet: rendered/CLUSTER/APP; for "" (a workspace without
// clusters) rendered/APP.
func AppRenderedDirIn(cluster, app string) string {
	if cluster == "" {
		return AppRenderedDir(app)
	}
	return path.Join(RenderedDir, cluster, app)
}

// PlacedOn returns the snapshot narrowed to the apps rendered for cluster
// in fsys (those with a rendered/CLUSTER/APP/ directory): what that
// cluster's controller applies. Dependencies on apps not placed there are
// dropped; the build places shared dependencies with their dependants.
func (s *Snapshot) PlacedOn(fsys fs.FS, cluster string) *Snapshot {
	out := &Snapshot{Config: s.Config, Lock: s.Lock, Apps: map[string]*AppEntry{}}
	for name, a := range s.Apps {
		if st, err := fs.Stat(fsys, AppRenderedDirIn(cluster, name)); err == nil && st.IsDir() {
			cp := *a
			out.Apps[name] = &cp
		}
	}
	for _, a := range out.Apps {
		var deps []string
		for _, d := range a.DependsOn {
			if _, ok := out.Apps[d]; ok {
				deps = append(deps, d)
			}
		}
		a.DependsOn = deps
	}
	return out
}

// PromotionsFile (apps/APP/promotions.yaml) records, per stage after the
// first, which source of the app was promoted into it.
const PromotionsFile = "promotions.yaml"

// AnnotationSource on every object rendered for a fleet cluster is the
// digest of the app's source (app.yaml, values.yaml and locked versions)
// it was rendered from: what promotion compares across stages.
const AnnotationSource = "berth.dev/source"

// Promotions is apps/APP/promotions.yaml.
type Promotions struct {
	Stages map[string]Promotion `json:"stages,omitempty"`
}

// Promotion is the source promoted into one stage, from which stage, when.
type Promotion struct {
	Source string    `json:"source"`
	From   string    `json:"from"`
	At     time.Time `json:"at"`
}

// ReadPromotions reads apps/APP/promotions.yaml; missing means none.
func (w *Workspace) ReadPromotions(app string) (*Promotions, error) {
	rel := path.Join(AppDir(app), PromotionsFile)
	data, err := w.ReadFile(rel)
	p := &Promotions{}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil
		}
		return nil, err
	}
	if err := decodeStrict(rel, data, p); err != nil {
		return nil, err
	}
	return p, nil
}

// WritePromotions writes apps/APP/promotions.yaml.
func (w *Workspace) WritePromotions(app string, p *Promotions) error {
	return w.WriteFile(path.Join(AppDir(app), PromotionsFile), mustYAML(p))
}

// StageOf returns the index of the first environment that holds cluster,
// -1 when none does.
func (c *Config) StageOf(cluster string, members func(Environment) []string) int {
	for i, e := range c.Environments {
		if slices.Contains(members(e), cluster) {
			return i
		}
	}
	return -1
}
