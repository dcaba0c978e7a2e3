// Package netplan allocates pod and service address ranges to clusters so that
// no two clusters of a fleet (or of one berth home) overlap, and finds the
// overlaps among ranges that were given.
package netplan

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
)

// Ranges are the pod and service address ranges of one cluster.
type Ranges struct {
	Pods     []netip.Prefix `json:"pods"`
	Services []netip.Prefix `json:"services"`
}

// All lists every range, pods first.
func (r Ranges) All() []netip.Prefix { return append(slices.Clone(r.Pods), r.Services...) }

// Allocation is the ranges planned for the i-th cluster of a plan.
type Allocation struct {
	Index    int          `json:"index"`
	Pods     netip.Prefix `json:"pods"`
	Services netip.Prefix `json:"services"`
}

// Limits of a plan: the API server refuses a service range with more than 20
// host bits, and a range smaller than these holds too few pods or services to
// be of use.
const (
	minServiceBits = 12
	maxPodBits     = 24
	maxServiceBits = 26
)

// Plan splits supernet into n equal slices, one per cluster, and gives each
// cluster the first half of its slice for pods and the quarter after it for
// services (never more than a /12, which is all kube-apiserver accepts). The
// last quarter of each slice is left free for growth.
func Plan(supernet netip.Prefix, n int) ([]Allocation, error) {
	if !supernet.IsValid() {
		return nil, fmt.Errorf("supernet %s is not a valid CIDR range", supernet)
	}
	supernet = supernet.Masked()
	if n < 1 {
		return nil, fmt.Errorf("the number of clusters must be at least 1, got %d", n)
	}
	split := bits.Len(uint(n - 1)) // slices of 2^split >= n
	slice := supernet.Bits() + split
	pods, services := slice+1, max(slice+2, minServiceBits)
	if supernet.Addr().Is6() {
		pods, services = max(pods, 64), max(services, 108) // a node needs a /64; services: at most 20 host bits
	}
	maxPods, maxServices := maxPodBits, maxServiceBits
	if supernet.Addr().Is6() {
		maxPods, maxServices = 112, 120
	}
	if pods > maxPods || services > maxServices || slice+2 > supernet.Addr().BitLen() {
		return nil, fmt.Errorf("supernet %s is too small for %d clusters: each would get less than a /%d for pods and a /%d for services; use a larger supernet or fewer clusters",
			supernet, n, maxPods, maxServices)
	}
	out := make([]Allocation, n)
	for i := range n {
		base := nth(supernet, slice, uint64(i))
		out[i] = Allocation{
			Index:    i,
			Pods:     netip.PrefixFrom(base, pods),
			Services: netip.PrefixFrom(nth(netip.PrefixFrom(base, slice), slice+2, 2), services),
		}
	}
	return out, nil
}

// nth returns the first address of the i-th prefix of length bitsLen inside p.
func nth(p netip.Prefix, bitsLen int, i uint64) netip.Addr {
	a := p.Addr().As16()
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	shift := uint(p.Addr().BitLen() - bitsLen)
	var addHi, addLo uint64
	switch {
	case shift >= 128:
	case shift >= 64:
		addHi = i << (shift - 64)
	case shift == 0:
		addLo = i
	default:
		addLo, addHi = i<<shift, i>>(64-shift)
	}
	lo, carry := bits.Add64(lo, addLo, 0)
	hi, _ = bits.Add64(hi, addHi, carry)
	binary.BigEndian.PutUint64(a[:8], hi)
	binary.BigEndian.PutUint64(a[8:], lo)
	addr := netip.AddrFrom16(a)
	if p.Addr().Is4() {
		addr = addr.Unmap()
	}
	return addr
}

// Overlap is two clusters whose ranges share addresses.
type Overlap struct {
	A, B   string
	RangeA netip.Prefix
	RangeB netip.Prefix
}

func (o Overlap) Error() string {
	return fmt.Sprintf("the ranges of cluster %s (%s) and cluster %s (%s) overlap", o.A, o.RangeA, o.B, o.RangeB)
}

// Find returns every pair of named clusters whose ranges overlap, including
// one cluster's pod range overlapping its own service range (A and B are then
// the same). Names are compared in sorted order so the result is stable.
func Find(clusters map[string]Ranges) []Overlap {
	names := make([]string, 0, len(clusters))
	for n := range clusters {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []Overlap
	for i, a := range names {
		ra := clusters[a].All()
		for x, pa := range ra {
			for y := x + 1; y < len(ra); y++ {
				if pa.Overlaps(ra[y]) {
					out = append(out, Overlap{A: a, B: a, RangeA: pa, RangeB: ra[y]})
				}
			}
		}
		for _, b := range names[i+1:] {
			for _, pa := range ra {
				for _, pb := range clusters[b].All() {
					if pa.Overlaps(pb) {
						out = append(out, Overlap{A: a, B: b, RangeA: pa, RangeB: pb})
					}
				}
			}
		}
	}
	return out
}

// Next returns the first prefix of length bitsLen inside pool, trying from
// the one that holds start onwards and wrapping around, that overlaps none of
// taken.
func Next(pool netip.Prefix, bitsLen int, start netip.Addr, taken []netip.Prefix) (netip.Prefix, error) {
	pool = pool.Masked()
	if bitsLen < pool.Bits() || bitsLen > pool.Addr().BitLen() {
		return netip.Prefix{}, fmt.Errorf("a /%d does not fit in %s", bitsLen, pool)
	}
	count := uint64(1) << min(bitsLen-pool.Bits(), 63)
	first := uint64(0)
	if pool.Contains(start) {
		for i := range count {
			if netip.PrefixFrom(nth(pool, bitsLen, i), bitsLen).Contains(start) {
				first = i
				break
			}
		}
	}
	for k := range count {
		p := netip.PrefixFrom(nth(pool, bitsLen, (first+k)%count), bitsLen)
		if !slices.ContainsFunc(taken, p.Overlaps) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("every /%d of %s is taken", bitsLen, pool)
}

// ParsePrefixes parses a list of CIDR ranges; field names them in errors.
func ParsePrefixes(field string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR range (like 10.244.0.0/16)", field, part)
			}
			if p != p.Masked() {
				return nil, fmt.Errorf("%s: %s has host bits set; did you mean %s?", field, p, p.Masked())
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// Nth returns the i-th prefix of length bitsLen inside p.
func Nth(p netip.Prefix, bitsLen int, i uint64) netip.Prefix {
	return netip.PrefixFrom(nth(p.Masked(), bitsLen, i), bitsLen)
}
