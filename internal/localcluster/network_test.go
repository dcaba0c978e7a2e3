package localcluster

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"berth.dev/berth/internal/netplan"
)

// fakeState records a stopped cluster in home, as Up leaves one.
func fakeState(t *testing.T, home, name string, port int, net *Network) {
	t.Helper()
	c := newCluster(home, name)
	c.State = State{Name: name, Versions: DefaultVersions(), Nodes: 1, Created: time.Now(),
		Ports: Ports{APIServer: port, Etcd: port + 1, EtcdPeer: port + 2, ControllerManager: port + 3, Scheduler: port + 4}, Network: net}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.saveState(); err != nil {
		t.Fatal(err)
	}
}

// TestNewClustersGetRangesOfTheirOwn checks that each new cluster of a home
// gets pod and service ranges no other cluster of the home has, a cluster
// recorded before ranges were recorded included.
func TestNewClustersGetRangesOfTheirOwn(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	first := newCluster(home, "dev")
	if _, err := first.allocateNetwork(ctx, home, nil); err != nil {
		t.Fatal(err)
	}
	if *first.State.Network != (Network{PodCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/20"}) {
		t.Fatalf("the first cluster of a home got %+v, want 10.244.0.0/16 and 10.96.0.0/20", first.State.Network)
	}

	fakeState(t, home, "legacy", 20000, nil) // 10.244.0.0/16, 10.96.0.0/16
	fakeState(t, home, "prod-eu", 20010, &Network{PodCIDR: "10.245.0.0/16", ServiceCIDR: "10.97.0.0/20"})
	ranges := map[string]netplan.Ranges{
		"legacy":  rangesOf(t, legacyNet),
		"prod-eu": rangesOf(t, Network{PodCIDR: "10.245.0.0/16", ServiceCIDR: "10.97.0.0/20"}),
	}
	for _, name := range []string{"prod-us", "staging", "qa"} {
		c := newCluster(home, name)
		unlock, err := c.allocateNetwork(ctx, home, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.State.Network.validate(); err != nil {
			t.Fatalf("cluster %s: %v", name, err)
		}
		ranges[name] = rangesOf(t, *c.State.Network)
		if o := netplan.Find(ranges); len(o) > 0 {
			t.Fatalf("cluster %s got %+v: %v", name, c.State.Network, o[0])
		}
		c.State.Ports = Ports{APIServer: 21000 + len(ranges)*10, Etcd: 21001 + len(ranges)*10, EtcdPeer: 21002 + len(ranges)*10, ControllerManager: 21003 + len(ranges)*10, Scheduler: 21004 + len(ranges)*10}
		c.State.Name, c.State.Versions, c.State.Nodes = name, DefaultVersions(), 1
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := c.saveState(); err != nil {
			t.Fatal(err)
		}
		unlock()
	}
	if got := (Network{PodCIDR: "10.246.0.0/16"}).nodePodCIDR(3); got != "10.246.3.0/24" {
		t.Errorf("node 3's pod range = %s, want 10.246.3.0/24", got)
	}
	if got := (Network{ServiceCIDR: "10.96.16.0/20"}).serviceIP(); got != "10.96.16.1" {
		t.Errorf("service IP = %s, want 10.96.16.1", got)
	}
}

func rangesOf(t *testing.T, n Network) netplan.Ranges {
	t.Helper()
	return netplan.Ranges{Pods: []netip.Prefix{netip.MustParsePrefix(n.PodCIDR)}, Services: []netip.Prefix{netip.MustParsePrefix(n.ServiceCIDR)}}
}
