package localcluster

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"berth.dev/berth/internal/netplan"
)

// Network is a local cluster's pod and service ranges. Each new cluster of a
// berth home gets ranges no other cluster of that home has, so that clusters
// side by side can be joined into one fleet without address collisions.
type Network struct {
	// PodCIDR holds every node's pod range: node i gets its i-th /24.
	PodCIDR string `json:"podCIDR"`
	// ServiceCIDR is the API server's service-cluster-ip-range.
	ServiceCIDR string `json:"serviceCIDR"`
}

// Where local clusters take their ranges from. The first cluster of a home
// gets 10.244.0.0/16 and 10.96.0.0/20 (the ranges of clusters made before
// ranges were recorded were 10.244.0.0/16 and 10.96.0.0/16).
var (
	podPool      = netip.MustParsePrefix("10.128.0.0/9")
	podStart     = netip.MustParseAddr("10.244.0.0")
	podBits      = 16
	servicePool  = netip.MustParsePrefix("10.96.0.0/11")
	serviceStart = netip.MustParseAddr("10.96.0.0")
	serviceBits  = 20
	legacyNet    = Network{PodCIDR: "10.244.0.0/16", ServiceCIDR: serviceCIDR}
)

// network returns the cluster's ranges; a cluster recorded before ranges were
// recorded has the ranges every cluster had then.
func (s State) network() Network {
	if s.Network == nil {
		return legacyNet
	}
	return *s.Network
}

// NetworkOf returns the cluster's pod and service ranges.
func (c *Cluster) NetworkOf() Network { return c.State.network() }

func (n Network) validate() error {
	pods, err := netip.ParsePrefix(n.PodCIDR)
	if err != nil || pods.Bits() > 24 || !pods.Addr().Is4() {
		return fmt.Errorf("network.podCIDR %q is not an IPv4 range of at least a /24", n.PodCIDR)
	}
	svc, err := netip.ParsePrefix(n.ServiceCIDR)
	if err != nil || svc.Bits() < 12 || svc.Bits() > 28 || !svc.Addr().Is4() {
		return fmt.Errorf("network.serviceCIDR %q is not an IPv4 range between a /12 and a /28", n.ServiceCIDR)
	}
	return nil
}

// podCIDROf is the pod range of the i-th node: the i-th /24 of the cluster's.
func (n Network) nodePodCIDR(i int) string {
	return netplan.Nth(netip.MustParsePrefix(n.PodCIDR), 24, uint64(i)).String()
}

// serviceIP is the first address of the service range: the kubernetes
// Service's, which the API server's certificate names.
func (n Network) serviceIP() string {
	return netip.MustParsePrefix(n.ServiceCIDR).Addr().Next().String()
}

// allocateNetwork picks ranges for a new cluster that overlap no other
// cluster's of the home. It holds a lock over the home's clusters while it
// reads theirs and records the new one's, so two clusters created at once
// never get the same ranges.
func (c *Cluster) allocateNetwork(ctx context.Context, home string, progress ProgressFunc) (func(), error) {
	if err := os.MkdirAll(clustersDir(home), 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, filepath.Join(clustersDir(home), ".network.lock"), progress)
	if err != nil {
		return nil, err
	}
	taken, err := takenRanges(home, c.Name)
	if err != nil {
		unlock()
		return nil, err
	}
	pods, err := netplan.Next(podPool, podBits, podStart, taken)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("no free pod range for cluster %q: %w; remove a cluster with 'berth down --purge'", c.Name, err)
	}
	svc, err := netplan.Next(servicePool, serviceBits, serviceStart, taken)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("no free service range for cluster %q: %w; remove a cluster with 'berth down --purge'", c.Name, err)
	}
	c.State.Network = &Network{PodCIDR: pods.String(), ServiceCIDR: svc.String()}
	return unlock, nil
}

// takenRanges lists the ranges of every other cluster of home whose state
// can be read.
func takenRanges(home, except string) ([]netip.Prefix, error) {
	list, err := List(home)
	if err != nil {
		return nil, err
	}
	var taken []netip.Prefix
	for _, s := range list {
		if s.Name == except || s.Network == nil {
			continue
		}
		for _, r := range []string{s.Network.PodCIDR, s.Network.ServiceCIDR} {
			if p, err := netip.ParsePrefix(r); err == nil {
				taken = append(taken, p)
			}
		}
	}
	return taken, nil
}
