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
	var parts []string
	for _, e := range n.edges {
		parts = append(parts, fmt.Sprintf("%s %s %s", e.who(), e.needs(), e.raw))
	}
	genuine := !fits(n.edges...)
	text := fmt.Sprintf("no version of %s satisfies all of: %s (available: %s)", n.pkg, strings.Join(parts, "; "), available(s, n.pkg))
	if n.chosen != nil && !genuine {
		text = fmt.Sprintf("%s %s was chosen, but %s", n.pkg, n.chosen.v.Original(), text)
	}
	return conflict{genuine: genuine, text: text}
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
