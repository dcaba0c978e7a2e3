package netplan

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestPlanNeverOverlaps checks, over random supernets and cluster counts, that
// a plan's ranges are inside the supernet, overlap nothing else of the plan
// and give the API server a service range it accepts; and that a plan is
// refused only when the supernet is too small.
func TestPlanNeverOverlaps(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 14))
	supernets := []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "10.128.0.0/9", "fd00::/48"}
	for range 300 {
		super := netip.MustParsePrefix(supernets[r.IntN(len(supernets))])
		n := 1 + r.IntN(600)
		plan, err := Plan(super, n)
		if err != nil {
			// Refused: then each slice would really be too small.
			if super.Addr().Is4() && super.Bits()+bitsFor(n)+1 <= maxPodBits && max(super.Bits()+bitsFor(n)+2, minServiceBits) <= maxServiceBits {
				t.Fatalf("Plan(%s, %d) refused a plan that fits: %v", super, n, err)
			}
			continue
		}
		if len(plan) != n {
			t.Fatalf("Plan(%s, %d) gave %d allocations", super, n, len(plan))
		}
		ranges := map[string]Ranges{}
		for i, a := range plan {
			if a.Index != i {
				t.Fatalf("allocation %d has index %d", i, a.Index)
			}
			for _, p := range []netip.Prefix{a.Pods, a.Services} {
				if !super.Contains(p.Addr()) || !super.Contains(lastAddr(p)) {
					t.Fatalf("Plan(%s, %d)[%d]: %s is outside the supernet", super, n, i, p)
				}
			}
			if super.Addr().Is4() && a.Services.Bits() < minServiceBits {
				t.Fatalf("Plan(%s, %d)[%d]: service range %s is larger than a /12", super, n, i, a.Services)
			}
			ranges[string(rune('a'+i%26))+itoa(i)] = Ranges{Pods: []netip.Prefix{a.Pods}, Services: []netip.Prefix{a.Services}}
		}
		if n <= 200 { // Find is quadratic; the pairwise check below covers the rest
			if o := Find(ranges); len(o) > 0 {
				t.Fatalf("Plan(%s, %d) overlaps: %v", super, n, o[0])
			}
		}
		for i := 1; i < n; i++ {
			if !plan[i-1].Services.Addr().Less(plan[i].Pods.Addr()) || plan[i-1].Services.Overlaps(plan[i].Pods) {
				t.Fatalf("Plan(%s, %d): allocation %d (%s) does not follow allocation %d (%s)", super, n, i, plan[i].Pods, i-1, plan[i-1].Services)
			}
		}
	}
}

func bitsFor(n int) int {
	b := 0
	for 1<<b < n {
		b++
	}
	return b
}

func itoa(i int) string { return netip.AddrFrom4([4]byte{0, 0, byte(i >> 8), byte(i)}).String() }

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 96
	}
	for b := off + p.Bits(); b < 128; b++ {
		a[b/8] |= 1 << (7 - b%8)
	}
	addr := netip.AddrFrom16(a)
	if p.Addr().Is4() {
		addr = addr.Unmap()
	}
	return addr
}

func TestPlanExample(t *testing.T) {
	plan, err := Plan(netip.MustParsePrefix("10.0.0.0/8"), 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []Allocation{
		{0, netip.MustParsePrefix("10.0.0.0/11"), netip.MustParsePrefix("10.32.0.0/12")},
		{1, netip.MustParsePrefix("10.64.0.0/11"), netip.MustParsePrefix("10.96.0.0/12")},
		{2, netip.MustParsePrefix("10.128.0.0/11"), netip.MustParsePrefix("10.160.0.0/12")},
	}
	for i := range want {
		if plan[i] != want[i] {
			t.Errorf("allocation %d = %+v, want %+v", i, plan[i], want[i])
		}
	}
	if _, err := Plan(netip.MustParsePrefix("192.168.0.0/24"), 4); err == nil {
		t.Error("Plan(192.168.0.0/24, 4) gave pod ranges smaller than a /24")
	}
}

func TestFindNamesBothClusters(t *testing.T) {
	got := Find(map[string]Ranges{
		"prod-eu": {Pods: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, Services: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")}},
		"prod-us": {Pods: []netip.Prefix{netip.MustParsePrefix("10.244.128.0/17")}, Services: []netip.Prefix{netip.MustParsePrefix("10.97.0.0/16")}},
		"dev":     {Pods: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, Services: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}},
	})
	if len(got) != 1 || got[0].A != "prod-eu" || got[0].B != "prod-us" {
		t.Fatalf("Find = %v, want prod-eu/prod-us only", got)
	}
	if msg := got[0].Error(); msg != "the ranges of cluster prod-eu (10.244.0.0/16) and cluster prod-us (10.244.128.0/17) overlap" {
		t.Errorf("message = %q", msg)
	}
}

func TestNextSkipsTakenAndWraps(t *testing.T) {
	pool := netip.MustParsePrefix("10.128.0.0/9")
	start := netip.MustParseAddr("10.244.0.0")
	p, err := Next(pool, 16, start, nil)
	if err != nil || p != netip.MustParsePrefix("10.244.0.0/16") {
		t.Fatalf("Next = %v, %v; want 10.244.0.0/16", p, err)
	}
	taken := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("10.245.0.0/16")}
	if p, _ = Next(pool, 16, start, taken); p != netip.MustParsePrefix("10.246.0.0/16") {
		t.Fatalf("Next = %v, want 10.246.0.0/16", p)
	}
	var all []netip.Prefix
	for i := 244; i < 256; i++ {
		all = append(all, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16))
	}
	if p, _ = Next(pool, 16, start, all); p != netip.MustParsePrefix("10.128.0.0/16") {
		t.Fatalf("Next = %v, want the pool to wrap around to 10.128.0.0/16", p)
	}
	if _, err := Next(netip.MustParsePrefix("10.0.0.0/15"), 16, start, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/15")}); err == nil {
		t.Fatal("Next found a range in a full pool")
	}
}
