package cli

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"berth.dev/berth/internal/workspace"
)

// TestClusterAddReadsRangesAndRefusesOverlaps adds the test cluster to a
// workspace under two names: the first records the ranges read from the
// cluster; the second (the same ranges) is refused naming both clusters and
// changes nothing, until --allow-overlap.
func TestClusterAddReadsRangesAndRefusesOverlaps(t *testing.T) {
	kc := kubeconfig(t)
	home, dir := t.TempDir(), t.TempDir()
	mustBerth(t, home, "init", dir)
	head := git(t, dir, "rev-parse", "HEAD")

	mustBerth(t, home, "cluster", "add", "dev", "-C", dir, "--kubeconfig", kc, "--label", "env=dev", "--label", "region=eu")
	ws, err := workspace.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	dev, ok := ws.Config.FleetCluster("dev")
	if !ok {
		t.Fatalf("berth.yaml has no cluster dev:\n%s", read(t, dir, "berth.yaml"))
	}
	if dev.Labels["env"] != "dev" || dev.Labels["region"] != "eu" || dev.Kubeconfig != kc {
		t.Errorf("cluster dev recorded as %+v", dev)
	}
	if len(dev.Network.Pods) == 0 || len(dev.Network.Services) == 0 {
		t.Fatalf("cluster dev has no ranges read from the cluster: %+v", dev.Network)
	}
	for _, r := range append(dev.Network.Pods, dev.Network.Services...) {
		if _, err := netip.ParsePrefix(r); err != nil {
			t.Errorf("recorded range %q: %v", r, err)
		}
	}
	if got := strings.TrimSpace(git(t, dir, "log", "-1", "--format=%s")); !strings.HasPrefix(got, "cluster: add dev") {
		t.Errorf("commit message = %q", got)
	}
	if strings.TrimSpace(git(t, dir, "rev-parse", "HEAD")) == strings.TrimSpace(head) {
		t.Error("cluster add made no commit")
	}

	head = git(t, dir, "rev-parse", "HEAD")
	r := berth(t, home, "cluster", "add", "dev2", "-C", dir, "--kubeconfig", kc)
	if r.code == 0 || !strings.Contains(r.err, "cluster dev ") || !strings.Contains(r.err, "cluster dev2 ") || !strings.Contains(r.err, "--allow-overlap") {
		t.Fatalf("overlapping cluster: exit %d, %q; want a refusal naming dev and dev2 and --allow-overlap", r.code, r.err)
	}
	if git(t, dir, "rev-parse", "HEAD") != head || git(t, dir, "status", "--porcelain") != "" {
		t.Fatal("a refused cluster add changed the workspace")
	}
	mustBerth(t, home, "cluster", "add", "dev2", "-C", dir, "--kubeconfig", kc, "--allow-overlap")

	// Given ranges, without contacting any cluster.
	mustBerth(t, home, "cluster", "add", "edge", "-C", dir, "--offline", "--pod-cidr", "10.50.0.0/16", "--service-cidr", "10.51.0.0/20", "--label", "region=us")
	if r := berth(t, home, "cluster", "add", "edge2", "-C", dir, "--offline", "--pod-cidr", "10.50.128.0/17", "--service-cidr", "10.52.0.0/20"); r.code == 0 || !strings.Contains(r.err, "cluster edge (10.50.0.0/16) and cluster edge2 (10.50.128.0/17) overlap") {
		t.Fatalf("overlapping given ranges: exit %d, %q", r.code, r.err)
	}
	if r := berth(t, home, "cluster", "add", "bad", "-C", dir, "--offline", "--pod-cidr", "10.50.0.1/16"); r.code == 0 || !strings.Contains(r.err, "--pod-cidr") {
		t.Fatalf("bad range: exit %d, %q", r.code, r.err)
	}

	var listing clusterListing
	if err := json.Unmarshal([]byte(mustBerth(t, home, "cluster", "list", "-C", dir, "-o", "json")), &listing); err != nil {
		t.Fatal(err)
	}
	if got := len(listing.Workspace); got != 3 {
		t.Fatalf("cluster list shows %d workspace clusters, want 3: %+v", got, listing.Workspace)
	}
	if out := mustBerth(t, home, "cluster", "list", "-C", dir); !strings.Contains(out, "edge") || !strings.Contains(out, "region=us") || !strings.Contains(out, "No local clusters") {
		t.Errorf("cluster list:\n%s", out)
	}

	mustBerth(t, home, "cluster", "remove", "dev2", "-C", dir)
	ws, _ = workspace.Open(dir)
	if _, ok := ws.Config.FleetCluster("dev2"); ok || len(ws.Config.Clusters) != 2 {
		t.Fatalf("after remove: %+v", ws.Config.Clusters)
	}
	if r := berth(t, home, "cluster", "remove", "nope", "-C", dir); r.code == 0 || !strings.Contains(r.err, "no cluster named nope") {
		t.Fatalf("removing an unknown cluster: exit %d, %q", r.code, r.err)
	}
}

func TestNetworkPlanCommand(t *testing.T) {
	home := t.TempDir()
	out := mustBerth(t, home, "network", "plan", "--supernet", "10.0.0.0/8", "--clusters", "3")
	for _, want := range []string{"10.0.0.0/11", "10.32.0.0/12", "10.64.0.0/11", "10.160.0.0/12"} {
		if !strings.Contains(out, want) {
			t.Errorf("network plan output lacks %s:\n%s", want, out)
		}
	}
	if r := berth(t, home, "network", "plan", "--supernet", "10.0.0.0/30", "--clusters", "3"); r.code == 0 || !strings.Contains(r.err, "too small") {
		t.Errorf("a too small supernet: exit %d, %q", r.code, r.err)
	}
}

// TestFleetStatusShowsAnUnreachableClusterAndTheRest runs berth status in a
// fleet workspace with one reachable and one unreachable cluster.
func TestFleetStatusShowsAnUnreachableClusterAndTheRest(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	mustBerth(t, home, "init", dir)
	mustBerth(t, home, "cluster", "add", "up", "-C", dir, "--kubeconfig", kubeconfig(t))
	mustBerth(t, home, "cluster", "add", "down", "-C", dir, "--kubeconfig", unreachable(t), "--offline", "--pod-cidr", "10.200.0.0/16", "--service-cidr", "10.201.0.0/20")
	r := berth(t, home, "status", "-C", dir, "-o", "json", "--cluster-timeout", "3s")
	if r.code != 0 {
		t.Fatalf("status: exit %d\n%s", r.code, r.err)
	}
	var st struct {
		Clusters []struct {
			Cluster   string `json:"cluster"`
			Reachable bool   `json:"reachable"`
			Error     string `json:"error"`
		} `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(r.out), &st); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	if len(st.Clusters) != 2 || st.Clusters[0].Cluster != "up" || !st.Clusters[0].Reachable || st.Clusters[0].Error != "" ||
		st.Clusters[1].Cluster != "down" || st.Clusters[1].Reachable || st.Clusters[1].Error == "" {
		t.Fatalf("fleet status = %+v, want up reachable and down unreachable", st.Clusters)
	}
	if out := mustBerth(t, home, "status", "-C", dir, "--cluster-timeout", "3s"); !strings.Contains(out, "down") || !strings.Contains(out, "Unreachable") {
		t.Errorf("fleet status:\n%s", out)
	}
}
