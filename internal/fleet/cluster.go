package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/netplan"
	"berth.dev/berth/internal/workspace"
)

// RESTConfig loads the client configuration of a cluster entry: its
// kubeconfig (the usual KUBECONFIG resolution when empty) and context.
func RESTConfig(c workspace.ClusterEntry) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		rules.ExplicitPath = c.Kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.Context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	cfg.WarningHandler = rest.NoWarnings{}
	return cfg, nil
}

// AddOptions describes a cluster to add to a fleet workspace.
type AddOptions struct {
	Cluster workspace.ClusterEntry
	// Config reaches the cluster, to read its ranges; nil: the ranges given in
	// Cluster.Network are taken as they are.
	Config *rest.Config
	// AllowOverlap records the cluster even when its ranges overlap another's.
	AllowOverlap bool
}

// OverlapError means a cluster's ranges overlap those of another cluster of
// the workspace.
type OverlapError struct{ Overlaps []netplan.Overlap }

func (e *OverlapError) Error() string {
	msgs := make([]string, len(e.Overlaps))
	for i, o := range e.Overlaps {
		msgs[i] = o.Error()
	}
	return strings.Join(msgs, "; ")
}

// Add records a cluster in berth.yaml (clusters:) as one commit: its labels
// and network ranges, read from the cluster where they are not given. It
// refuses a name already taken (by a cluster or an app, whose rendered
// directories would collide) and, unless AllowOverlap, ranges that overlap
// another cluster's.
func Add(ctx context.Context, ws *workspace.Workspace, opts AddOptions) (workspace.ClusterEntry, error) {
	c := opts.Cluster
	if err := workspace.ValidateClusterName(c.Name); err != nil {
		return c, err
	}
	if _, ok := ws.Config.FleetCluster(c.Name); ok {
		return c, fmt.Errorf("the workspace already has a cluster named %s (%s)", c.Name, workspace.ConfigFile)
	}
	if _, err := ws.App(c.Name); err == nil {
		return c, fmt.Errorf("cluster name %s is the name of an app of the workspace: rendered/%s/ would hold both; choose another name", c.Name, c.Name)
	}
	if opts.Config != nil && (len(c.Network.Pods) == 0 || len(c.Network.Services) == 0) {
		found, err := DetectNetwork(ctx, opts.Config)
		if err != nil {
			return c, fmt.Errorf("cluster %s: reading its network ranges: %w", c.Name, err)
		}
		if len(c.Network.Pods) == 0 {
			c.Network.Pods = found.Pods
		}
		if len(c.Network.Services) == 0 {
			c.Network.Services = found.Services
		}
	}
	if opts.Config != nil && c.Kubernetes == nil {
		k, err := lifecycle.ReadKubernetes(ctx, opts.Config)
		if err != nil {
			return c, &KubernetesError{Cluster: c.Name, Err: err}
		}
		c.Kubernetes = k
	}
	if len(c.Network.Pods) == 0 || len(c.Network.Services) == 0 {
		return c, fmt.Errorf("cluster %s: its pod and service ranges could not be read from the cluster (pods: %s, services: %s); give them", c.Name, orNone(c.Network.Pods), orNone(c.Network.Services))
	}
	cfg := ws.Config
	cfg.Clusters = append(slices.Clone(cfg.Clusters), c)
	if !opts.AllowOverlap {
		if err := CheckOverlaps(cfg.Clusters, c.Name); err != nil {
			return c, err
		}
	}
	data, err := configYAML(cfg)
	if err != nil {
		return c, err
	}
	keep := filepath.ToSlash(filepath.Join(workspace.RenderedDir, c.Name, ".keep"))
	paths := []string{workspace.ConfigFile, keep}
	attrs, changed, err := fleetSecretAttributes(ws)
	if err != nil {
		return c, err
	}
	if changed {
		paths = append(paths, ".gitattributes")
	}
	err = ws.Change(ctx, fmt.Sprintf("cluster: add %s (%s)", c.Name, describe(c)), paths, func() error {
		if changed {
			if err := ws.WriteFile(".gitattributes", attrs); err != nil {
				return err
			}
		}
		if err := ws.WriteFile(keep, nil); err != nil {
			return err
		}
		return ws.WriteFile(workspace.ConfigFile, data)
	})
	if err != nil {
		return c, err
	}
	ws.Config = cfg
	return c, nil
}

// KubernetesError means a cluster's Kubernetes version and API versions,
// which an add records, could not be read from it.
type KubernetesError struct {
	Cluster string
	Err     error
}

func (e *KubernetesError) Error() string {
	return fmt.Sprintf("cluster %s: reading its Kubernetes version and API versions: %v", e.Cluster, e.Err)
}

func (e *KubernetesError) Unwrap() error { return e.Err }

// fleetSecretAttributes returns the workspace's .gitattributes with a
// fleet's rendered Secrets (rendered/CLUSTER/APP/secrets/) encrypted like
// the apps' (rendered/APP/secrets/), for a workspace whose encryption was set
// up before it had clusters; changed is false when nothing is to add.
func fleetSecretAttributes(ws *workspace.Workspace) ([]byte, bool, error) {
	data, err := ws.ReadFile(".gitattributes")
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	const app, fleet = "rendered/*/secrets/** filter=git-crypt diff=git-crypt", "rendered/*/*/secrets/** filter=git-crypt diff=git-crypt"
	lines := strings.Split(string(data), "\n")
	if slices.Contains(lines, fleet) {
		return nil, false, nil
	}
	i := slices.Index(lines, app)
	if i < 0 {
		return nil, false, nil
	}
	lines = slices.Insert(lines, i+1, fleet)
	return []byte(strings.Join(lines, "\n")), true, nil
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none found"
	}
	return strings.Join(l, ",")
}

func describe(c workspace.ClusterEntry) string {
	var parts []string
	for _, k := range slices.Sorted(mapsKeys(c.Labels)) {
		parts = append(parts, k+"="+c.Labels[k])
	}
	parts = append(parts, "pods "+strings.Join(c.Network.Pods, ","), "services "+strings.Join(c.Network.Services, ","))
	return strings.Join(parts, ", ")
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// CheckOverlaps returns an *OverlapError for the overlaps among clusters'
// ranges that involve the cluster named (every overlap when name is "").
func CheckOverlaps(clusters []workspace.ClusterEntry, name string) error {
	ranges := map[string]netplan.Ranges{}
	for _, c := range clusters {
		r, err := Ranges(c)
		if err != nil {
			return err
		}
		ranges[c.Name] = r
	}
	var hits []netplan.Overlap
	for _, o := range netplan.Find(ranges) {
		if name == "" || o.A == name || o.B == name {
			hits = append(hits, o)
		}
	}
	if len(hits) > 0 {
		return &OverlapError{Overlaps: hits}
	}
	return nil
}

// Ranges parses a cluster entry's network ranges.
func Ranges(c workspace.ClusterEntry) (netplan.Ranges, error) {
	pods, err := netplan.ParsePrefixes(fmt.Sprintf("cluster %s: network.pods", c.Name), c.Network.Pods)
	if err != nil {
		return netplan.Ranges{}, err
	}
	svc, err := netplan.ParsePrefixes(fmt.Sprintf("cluster %s: network.services", c.Name), c.Network.Services)
	if err != nil {
		return netplan.Ranges{}, err
	}
	return netplan.Ranges{Pods: pods, Services: svc}, nil
}

// Remove drops a cluster from berth.yaml as one commit, with its rendered
// directory. It refuses while an environment names the cluster.
func Remove(ctx context.Context, ws *workspace.Workspace, name string) error {
	if _, ok := ws.Config.FleetCluster(name); !ok {
		return fmt.Errorf("the workspace has no cluster named %s (%s lists: %s)", name, workspace.ConfigFile, strings.Join(Names(ws.Config.Clusters), ", "))
	}
	for _, e := range ws.Config.Environments {
		if slices.Contains(e.Clusters, name) {
			return fmt.Errorf("environment %s names cluster %s in %s: remove it from the environment first", e.Name, name, workspace.ConfigFile)
		}
	}
	cfg := ws.Config
	cfg.Clusters = slices.DeleteFunc(slices.Clone(cfg.Clusters), func(c workspace.ClusterEntry) bool { return c.Name == name })
	dir := filepath.ToSlash(filepath.Join(workspace.RenderedDir, name))
	data, err := configYAML(cfg)
	if err != nil {
		return err
	}
	paths := []string{workspace.ConfigFile}
	if _, err := os.Stat(ws.Abs(dir)); err == nil {
		paths = append(paths, dir)
	}
	err = ws.Change(ctx, "cluster: remove "+name, paths, func() error {
		if err := os.RemoveAll(ws.Abs(dir)); err != nil {
			return err
		}
		return ws.WriteFile(workspace.ConfigFile, data)
	})
	if err != nil {
		return err
	}
	ws.Config = cfg
	return nil
}

// Names lists the clusters' names in order.
func Names(clusters []workspace.ClusterEntry) []string {
	out := make([]string, len(clusters))
	for i, c := range clusters {
		out[i] = c.Name
	}
	return out
}

func configYAML(cfg workspace.Config) ([]byte, error) {
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var check workspace.Config
	if err := workspace.ParseConfig(workspace.ConfigFile, data, &check); err != nil {
		return nil, err
	}
	return data, nil
}

// DetectNetwork reads a cluster's ranges: the nodes' pod ranges (merged
// into the smallest covering ranges when they share a /16) and the service
// ranges from the API server's ServiceCIDR objects (Kubernetes 1.33 and
// later; an older API server's range cannot be read and must be given).
func DetectNetwork(ctx context.Context, cfg *rest.Config) (workspace.ClusterNetwork, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return workspace.ClusterNetwork{}, err
	}
	var out workspace.ClusterNetwork
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return out, err
	}
	var pods []netip.Prefix
	for _, n := range nodes.Items {
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, s := range cidrs {
			if p, err := netip.ParsePrefix(s); err == nil {
				pods = append(pods, p)
			}
		}
	}
	for _, p := range cover(pods) {
		out.Pods = append(out.Pods, p.String())
	}
	if list, err := cs.NetworkingV1().ServiceCIDRs().List(ctx, metav1.ListOptions{}); err == nil {
		for _, sc := range list.Items {
			out.Services = append(out.Services, sc.Spec.CIDRs...)
		}
	}
	sort.Strings(out.Services)
	out.Services = slices.Compact(out.Services)
	return out, nil
}

// cover merges node pod ranges into /16s (the usual cluster pod range) when
// every range of a /16 lies in it; ranges larger than a /16 stay as they are.
func cover(ps []netip.Prefix) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, p := range ps {
		c := p
		if p.Bits() > 16 {
			c, _ = p.Addr().Prefix(16)
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}
