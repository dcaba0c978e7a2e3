package resolve

import (
	"fmt"
	"strings"
)

// explainNoVersion says why no version of n fits its edges, naming the smallest
// set of requirements that cannot hold together.
func (s *solver) explainNoVersion(n *node) conflict {
	vs := s.u.pkgs[n.pkg]
	fits := func(edges ...edge) bool {
		for i := range vs {
			ok := true
			for _, e := range edges {
				if !e.constraint.Check(vs[i].v) {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
		return false
	}
	// One requirement no version meets.
	for _, e := range n.edges {
		if !fits(e) {
			return conflict{genuine: true, text: fmt.Sprintf("%s %s %s %s, but the catalog only has %s",
				e.who(), e.needs(), n.pkg, e.raw, available(s, n.pkg))}
		}
	}
	// Two requirements that exclude each other.
	for i := range n.edges {
		for j := i + 1; j < len(n.edges); j++ {
			a, b := n.edges[i], n.edges[j]
			if !fits(a, b) {
				if b.installed() && !a.installed() {
					a, b = b, a
				}
				return conflict{genuine: true, text: fmt.Sprintf("%s %s %s %s, but %s %s %s; no version of %s satisfies both (available: %s)",
					a.who(), a.needs(), n.pkg, a.raw, b.who(), b.needs(), b.raw, n.pkg, available(s, n.pkg))}
			}
		}
	}
	parts := func(edges []edge) string {
		var p []string
		for _, e := range edges {
			p = append(p, fmt.Sprintf("%s %s %s", e.who(), e.needs(), e.raw))
		}
		return strings.Join(p, "; ")
	}
	if fits(n.edges...) && n.chosen != nil && len(n.edges) > 1 {
		// Some version fits every requirement, but not the one chosen
		// earlier; the search goes on, and this is kept only if nothing
		// better explains a failure.
		last := n.edges[len(n.edges)-1]
		return conflict{text: fmt.Sprintf("%s %s %s %s, but %s %s had already been chosen for: %s",
			last.who(), last.needs(), n.pkg, last.raw, n.pkg, n.chosen.v.Original(), parts(n.edges[:len(n.edges)-1]))}
	}
	return conflict{genuine: true, text: fmt.Sprintf("no version of %s satisfies all of: %s (available: %s)", n.pkg, parts(n.edges), available(s, n.pkg))}
}

func (e edge) who() string {
	if e.origin == nil {
		return e.request
	}
	s := e.origin.pkg + " " + e.origin.chosen.v.Original()
	if e.origin.installed {
		s += " (already installed)"
	}
	return s
}

func (e edge) installed() bool { return e.origin != nil && e.origin.installed }

func (e edge) needs() string {
	if e.origin == nil && e.request == "you" {
		return "asked for"
	}
	return "needs"
}

// available lists the newest versions of pkg, for explanations.
func available(s *solver, pkg string) string {
	vs := s.u.pkgs[pkg]
	const most = 5
	var out []string
	for i := 0; i < len(vs) && i < most; i++ {
		out = append(out, vs[i].v.Original())
	}
	if len(vs) > most {
		out = append(out, fmt.Sprintf("and %d older", len(vs)-most))
	}
	if len(out) == 0 {
		return "no versions"
	}
	return strings.Join(out, ", ")
}
