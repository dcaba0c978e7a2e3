package resolve

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"berth.dev/berth/internal/pkgspec"
)

// Request is one app to install or keep.
type Request struct {
	// App is the app's name; it defaults to Package.
	App     string
	Package string
	// Constraint limits the app's version (empty: any); an exact version when
	// the user chose a channel.
	Constraint string
	// Installed marks apps that are already installed: their locked versions are
	// preferred, and explanations say so.
	Installed bool
}

func (r Request) app() string {
	if r.App != "" {
		return r.App
	}
	return r.Package
}

// Input is what Solve resolves.
type Input struct {
	Requests []Request
	// Locked maps instance keys (see Instance.Key) to the version chosen before;
	// a locked version is tried first when it still fits, so an unrelated change
	// does not upgrade anything.
	Locked map[string]string
	// Prefer maps package names to a version tried first for any instance
	// without a locked version, such as the version of the stable channel.
	Prefer map[string]string
	// MaxSteps bounds the search; DefaultMaxSteps when zero.
	MaxSteps int
}

// DefaultMaxSteps bounds the number of versions the search tries.
const DefaultMaxSteps = 200_000

// Role says what an instance is for.
type Role string

// Roles.
const (
	RoleApp       Role = "app"
	RoleShared    Role = "shared"
	RoleComponent Role = "component"
)

func (r Role) String() string { return string(r) }

// Instance is one package instance of a solution.
type Instance struct {
	// Key identifies the instance: "app:NAME" for an app, "shared:PACKAGE" for a
	// shared dependency, and the owner's key plus "/DEPENDENCY" for a component
	// (so "app:airflow/postgresql").
	Key     string
	Role    Role
	Package string
	Version string
	// Dependencies maps each dependency name to the key of the instance that
	// serves it.
	Dependencies map[string]string
}

// Solution is an exact version for every instance, sorted by key.
type Solution struct {
	Instances []Instance
}

// Get returns the instance with key.
func (s *Solution) Get(key string) (Instance, bool) {
	i := sort.Search(len(s.Instances), func(i int) bool { return s.Instances[i].Key >= key })
	if i < len(s.Instances) && s.Instances[i].Key == key {
		return s.Instances[i], true
	}
	return Instance{}, false
}

// AppKey returns the key of the app called name.
func AppKey(name string) string { return "app:" + name }

// SharedKey returns the key of the shared instance of pkg.
func SharedKey(pkg string) string { return "shared:" + pkg }

// ConflictError says why no solution exists, in plain words.
type ConflictError struct {
	Explanation string
}

func (e *ConflictError) Error() string { return "cannot resolve dependencies: " + e.Explanation }

// CycleError reports packages that depend on each other in a circle.
type CycleError struct {
	Cycle []string // "a 1.0.0", "b 2.0.0", "a 1.0.0"
}

func (e *CycleError) Error() string {
	return "dependency cycle: " + strings.Join(e.Cycle, " -> ") + "; packages must not depend on each other in a circle: remove one of these dependencies"
}

// ErrTooComplex is returned when the search exceeds Input.MaxSteps.
var ErrTooComplex = errors.New("the dependency problem is too large to search exhaustively; pin some versions with explicit constraints and retry")

// edge is a requirement on an instance: who needs it, and which versions fit.
type edge struct {
	origin     *node  // the node whose chosen version needs this; nil for a request
	request    string // for a request: "you" or "the installed app NAME"
	raw        string
	constraint *constraint
}

type node struct {
	key       string
	role      Role
	pkg       string
	edges     []edge
	chosen    *version
	level     int // the decision level at which chosen was set
	deps      map[string]string
	owners    []string // packages on the component path, to stop component cycles
	installed bool     // an app that is already installed
}

type solver struct {
	u        *Universe
	locked   map[string]string
	prefer   map[string]string
	nodes    map[string]*node
	cons     map[string]*constraint
	masks    map[maskKey]bitset
	steps    int
	maxSteps int
	explain  bool // record why versions conflict
	conflict *conflict
}

type conflict struct {
	text    string
	genuine bool
}

// Solve resolves in against u. Errors are a *ConflictError when no versions fit
// together, a *CycleError for circular dependencies, or ErrTooComplex.
func Solve(u *Universe, in Input) (*Solution, error) {
	sol, err := solveOnce(u, in, false)
	var ce *ConflictError
	if errors.As(err, &ce) && ce.Explanation == "" {
		// Explaining conflicts costs more than the search itself, so the
		// first search does not; the same search runs again to explain.
		_, err = solveOnce(u, in, true)
	}
	return sol, err
}

func solveOnce(u *Universe, in Input, explain bool) (*Solution, error) {
	s := &solver{u: u, locked: in.Locked, prefer: in.Prefer, nodes: map[string]*node{}, cons: map[string]*constraint{}, masks: map[maskKey]bitset{}, maxSteps: in.MaxSteps, explain: explain}
	if s.maxSteps == 0 {
		s.maxSteps = DefaultMaxSteps
	}
	var pending []string
	for _, r := range in.Requests {
		if !u.Has(r.Package) {
			return nil, &ConflictError{Explanation: fmt.Sprintf("%s is not a package in any catalog; check the name with 'berth search %s'", r.Package, r.Package)}
		}
		key := AppKey(r.app())
		if _, dup := s.nodes[key]; dup {
			return nil, fmt.Errorf("app %q is requested twice; give each app a distinct name", r.app())
		}
		n := &node{key: key, role: RoleApp, pkg: r.Package, owners: []string{r.Package}, installed: r.Installed}
		raw := r.Constraint
		if raw == "" {
			raw = "*"
		}
		c, err := s.constraint(raw)
		if err != nil {
			return nil, fmt.Errorf("app %s: %q is not a version constraint: %w", r.app(), r.Constraint, err)
		}
		from := "you"
		if r.Installed {
			from = fmt.Sprintf("the installed app %s", r.app())
		}
		n.edges = append(n.edges, edge{request: from, raw: raw, constraint: c})
		s.nodes[key] = n
		pending = append(pending, key)
	}
	ok, _, err := s.solve(pending, 0)
	if err != nil {
		return nil, err
	}
	if !ok {
		if !explain {
			return nil, &ConflictError{}
		}
		text := "no combination of versions satisfies every constraint"
		if s.conflict != nil {
			text = s.conflict.text
		}
		return nil, &ConflictError{Explanation: text}
	}
	sol := s.solution()
	if err := findCycle(sol); err != nil {
		return nil, err
	}
	return sol, nil
}

func (s *solver) constraint(raw string) (*constraint, error) {
	if c, ok := s.cons[raw]; ok {
		return c, nil
	}
	c, err := compileConstraint(raw)
	if err != nil {
		return nil, err
	}
	s.cons[raw] = c
	return c, nil
}

// bitset marks versions of a package by their index.
type bitset []uint64

func (b bitset) has(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }

type maskKey struct {
	c   *constraint
	pkg string
}

// mask returns which versions of pkg satisfy c, computed once per solve: the
// search asks the same question many times.
func (s *solver) mask(c *constraint, pkg string) bitset {
	k := maskKey{c, pkg}
	if m, ok := s.masks[k]; ok {
		return m
	}
	vs := s.u.pkgs[pkg]
	m := make(bitset, (len(vs)+63)/64)
	for i := range vs {
		if c.Check(vs[i].v) {
			m[i/64] |= 1 << (i % 64)
		}
	}
	s.masks[k] = m
	return m
}

// allowed returns the versions of n that satisfy every edge.
func (s *solver) allowed(n *node) bitset {
	vs := s.u.pkgs[n.pkg]
	out := make(bitset, (len(vs)+63)/64)
	for i := range out {
		out[i] = ^uint64(0)
	}
	for _, e := range n.edges {
		m := s.mask(e.constraint, n.pkg)
		for i := range out {
			out[i] &= m[i]
		}
	}
	return out
}

// candidates lists the versions of n that satisfy every edge: the locked
// version first (or else the preferred one), then newest first.
func (s *solver) candidates(n *node) []*version {
	vs := s.u.pkgs[n.pkg]
	var out []*version
	lockedAt := -1
	first, ok := s.locked[n.key]
	if !ok {
		first = s.prefer[n.pkg]
	}
	fit := s.allowed(n)
	for i := range vs {
		if fit.has(i) {
			if first != "" && lockedAt < 0 && vs[i].v.Original() == first {
				lockedAt = len(out)
			}
			out = append(out, &vs[i])
		}
	}
	if lockedAt > 0 {
		l := out[lockedAt]
		copy(out[1:lockedAt+1], out[:lockedAt])
		out[0] = l
	}
	return out
}

// levels is a conflict set: the decision levels a failure depends on.
type levels map[int]struct{}

// solve decides the pending nodes in order with conflict-directed
// backjumping: when a subtree fails for reasons that do not involve this
// node's choice, the other versions of this node are not tried, because they
// would fail the same way.
func (s *solver) solve(pending []string, depth int) (bool, levels, error) {
	for len(pending) > 0 && s.nodes[pending[0]].chosen != nil {
		pending = pending[1:]
	}
	if len(pending) == 0 {
		return true, nil, nil
	}
	n := s.nodes[pending[0]]
	rest := pending[1:]
	cands := s.candidates(n)
	conf := levels{}
	if len(cands) == 0 {
		s.noteNoVersion(n)
		n.addOrigins(conf)
		return false, conf, nil
	}
	for _, c := range cands {
		s.steps++
		if s.steps > s.maxSteps {
			return false, nil, ErrTooComplex
		}
		n.chosen, n.level = c, depth
		touched, created, clash, ok := s.addDeps(n, c)
		if ok {
			next := append(slices.Clip(rest), created...)
			solved, sub, err := s.solve(next, depth+1)
			if err != nil || solved {
				return solved, nil, err
			}
			if _, mine := sub[depth]; !mine {
				s.undo(touched, created)
				n.chosen, n.deps = nil, nil
				return false, sub, nil
			}
			for l := range sub {
				conf[l] = struct{}{}
			}
		} else if clash != nil {
			conf[clash.level] = struct{}{}
		}
		s.undo(touched, created)
		n.chosen, n.deps = nil, nil
	}
	n.addOrigins(conf)
	delete(conf, depth)
	return false, conf, nil
}

// addOrigins adds the levels of the decisions that put edges on n.
func (n *node) addOrigins(conf levels) {
	for _, e := range n.edges {
		if e.origin != nil {
			conf[e.origin.level] = struct{}{}
		}
	}
}

// addDeps adds c's dependencies as edges on their instances. It returns the
// nodes it added an edge to and the nodes it created; ok is false when an edge
// names a missing package or contradicts the version chosen for clash.
func (s *solver) addDeps(n *node, c *version) (touched []*node, created []string, clash *node, ok bool) {
	n.deps = make(map[string]string, len(c.deps))
	for _, d := range c.deps {
		if d.Optional {
			continue // wired in solution, when its shared instance is there
		}
		if !s.u.Has(d.Package) {
			s.record(conflict{genuine: true, text: fmt.Sprintf("%s %s needs %s %s, which is not in any catalog; add a catalog that has it ('berth catalog add') or choose another version of %s", n.pkg, c.v.Original(), d.Package, d.Constraint, n.pkg)})
			return touched, created, nil, false
		}
		var key string
		var owners []string
		role := RoleShared
		if d.Kind == pkgspec.Component {
			role = RoleComponent
			if slices.Contains(n.owners, d.Package) {
				s.record(conflict{genuine: true, text: fmt.Sprintf("dependency cycle: %s -> %s: a package cannot contain itself as a component", strings.Join(n.owners, " -> "), d.Package)})
				return touched, created, nil, false
			}
			key = n.key + "/" + d.key()
			owners = append(slices.Clip(n.owners), d.Package)
		} else {
			key = SharedKey(d.Package)
			owners = []string{d.Package}
		}
		n.deps[d.key()] = key
		raw := d.Constraint
		if raw == "" {
			raw = "*"
		}
		con, err := s.constraint(raw)
		if err != nil {
			s.record(conflict{genuine: true, text: fmt.Sprintf("%s %s has an invalid constraint %q on %s", n.pkg, c.v.Original(), d.Constraint, d.Package)})
			return touched, created, nil, false
		}
		t, exists := s.nodes[key]
		if !exists {
			t = &node{key: key, role: role, pkg: d.Package, owners: owners}
			s.nodes[key] = t
			created = append(created, key)
		}
		t.edges = append(t.edges, edge{origin: n, raw: raw, constraint: con})
		touched = append(touched, t)
		if t.chosen != nil && !s.mask(con, t.pkg).has(t.chosen.idx) {
			s.noteNoVersion(t)
			return touched, created, t, false
		}
	}
	return touched, created, nil, true
}

func (s *solver) undo(touched []*node, created []string) {
	for _, t := range touched {
		t.edges = t.edges[:len(t.edges)-1]
	}
	for _, k := range created {
		delete(s.nodes, k)
	}
}

// noteNoVersion records why n has no fitting version, unless a real conflict
// is already known: explaining costs more than the search step itself.
func (s *solver) noteNoVersion(n *node) {
	if !s.explain || (s.conflict != nil && s.conflict.genuine) {
		return
	}
	s.record(s.explainNoVersion(n))
}

func (s *solver) record(c conflict) {
	// Keep the first conflict that is real on its own (no version of a package
	// meets the constraints on it); a conflict that merely follows from an
	// earlier choice is kept only until a real one is found.
	if s.conflict == nil || (!s.conflict.genuine && c.genuine) {
		s.conflict = &c
	}
}

func (s *solver) solution() *Solution {
	sol := &Solution{}
	for _, n := range s.nodes {
		sol.Instances = append(sol.Instances, Instance{Key: n.key, Role: n.role, Package: n.pkg, Version: n.chosen.v.Original(), Dependencies: s.withOptional(n)})
	}
	sort.Slice(sol.Instances, func(i, j int) bool { return sol.Instances[i].Key < sol.Instances[j].Key })
	return sol
}

// withOptional returns n's dependencies plus its optional ones whose shared
// instance the solution has at a version their constraint allows; the others
// are left out, as if that package were not installed.
func (s *solver) withOptional(n *node) map[string]string {
	deps, cloned := n.deps, false
	for _, d := range n.chosen.deps {
		if !d.Optional {
			continue
		}
		t, ok := s.nodes[SharedKey(d.Package)]
		if !ok || t.chosen == nil {
			continue
		}
		raw := d.Constraint
		if raw == "" {
			raw = "*"
		}
		c, err := s.constraint(raw)
		if err != nil || !c.Check(t.chosen.v) {
			continue
		}
		if !cloned {
			deps, cloned = maps.Clone(n.deps), true
			if deps == nil {
				deps = map[string]string{}
			}
		}
		deps[d.key()] = t.key
	}
	return deps
}

func findCycle(sol *Solution) error {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var cycle []string
	var visit func(key string) bool
	visit = func(key string) bool {
		color[key] = grey
		stack = append(stack, key)
		inst, _ := sol.Get(key)
		names := make([]string, 0, len(inst.Dependencies))
		for name := range inst.Dependencies {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			dep := inst.Dependencies[name]
			switch color[dep] {
			case grey:
				i := slices.Index(stack, dep)
				for _, k := range append(stack[i:], dep) {
					in, _ := sol.Get(k)
					cycle = append(cycle, in.Package+" "+in.Version)
				}
				return true
			case white:
				if visit(dep) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[key] = black
		return false
	}
	for _, inst := range sol.Instances {
		if color[inst.Key] == white && visit(inst.Key) {
			return &CycleError{Cycle: cycle}
		}
	}
	return nil
}
