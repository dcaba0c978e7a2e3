package resolve

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// constraint is a semver constraint compiled for fast checks. The semver
// library's Check formats an error for every version it rejects, which makes it
// too slow for a search that checks millions of versions; the common forms
// (comparisons, ^, ~, x-ranges, ||) are compiled into plain comparisons here,
// and anything else falls back to the library, whose parse is authoritative.
type constraint struct {
	groups [][]comparison // OR of ANDs; nil when slow is used
	slow   *semver.Constraints
}

type op uint8

const (
	opEQ op = iota
	opNE
	opGT
	opGE
	opLT
	opLE
)

type comparison struct {
	op op
	v  *semver.Version
}

var term = regexp.MustCompile(`^(=|!=|>=|<=|>|<|\^|~)?v?(\d+)(?:\.(\d+|x|X|\*))?(?:\.(\d+|x|X|\*))?$`)

func compileConstraint(raw string) (*constraint, error) {
	slow, err := semver.NewConstraint(raw)
	if err != nil {
		return nil, err
	}
	c := &constraint{slow: slow}
	var groups [][]comparison
	for _, g := range strings.Split(raw, "||") {
		var and []comparison
		for _, f := range strings.Fields(strings.ReplaceAll(g, ",", " ")) {
			cs, ok := compileTerm(f)
			if !ok {
				return c, nil
			}
			and = append(and, cs...)
		}
		groups = append(groups, and)
	}
	c.groups = groups
	return c, nil
}

func ver(major, minor, patch uint64) *semver.Version {
	return semver.New(major, minor, patch, "", "")
}

// compileTerm turns one term into comparisons, or reports false for forms left
// to the library.
func compileTerm(f string) ([]comparison, bool) {
	if f == "*" || f == "x" || f == "X" {
		return nil, true
	}
	m := term.FindStringSubmatch(f)
	if m == nil {
		return nil, false
	}
	operator := m[1]
	major, _ := strconv.ParseUint(m[2], 10, 64)
	parts := 1
	var minor, patch uint64
	if m[3] != "" && isNum(m[3]) {
		minor, _ = strconv.ParseUint(m[3], 10, 64)
		parts = 2
		if m[4] != "" && isNum(m[4]) {
			patch, _ = strconv.ParseUint(m[4], 10, 64)
			parts = 3
		} else if m[4] != "" && !isWild(m[4]) {
			return nil, false
		}
	} else if m[3] != "" && m[4] != "" && !isWild(m[4]) {
		return nil, false
	}
	exact := ver(major, minor, patch)
	// upper is the first version after the wildcard range of a partial version.
	var upper *semver.Version
	switch parts {
	case 1:
		upper = ver(major+1, 0, 0)
	case 2:
		upper = ver(major, minor+1, 0)
	}
	switch operator {
	case "", "=":
		if parts == 3 {
			return []comparison{{opEQ, exact}}, true
		}
		return []comparison{{opGE, exact}, {opLT, upper}}, true
	case "!=":
		if parts == 3 {
			return []comparison{{opNE, exact}}, true
		}
	case ">=":
		return []comparison{{opGE, exact}}, true
	case "<":
		return []comparison{{opLT, exact}}, true
	case ">", "<=":
		if parts == 3 {
			o := opGT
			if operator == "<=" {
				o = opLE
			}
			return []comparison{{o, exact}}, true
		}
	case "^":
		switch {
		case major > 0 || parts == 1:
			return []comparison{{opGE, exact}, {opLT, ver(major+1, 0, 0)}}, true
		case minor > 0 || parts == 2:
			return []comparison{{opGE, exact}, {opLT, ver(0, minor+1, 0)}}, true
		default:
			return []comparison{{opGE, exact}, {opLT, ver(0, 0, patch+1)}}, true
		}
	case "~":
		if parts == 1 {
			return []comparison{{opGE, exact}, {opLT, ver(major+1, 0, 0)}}, true
		}
		return []comparison{{opGE, exact}, {opLT, ver(major, minor+1, 0)}}, true
	}
	return nil, false
}

func isNum(s string) bool  { _, err := strconv.ParseUint(s, 10, 64); return err == nil }
func isWild(s string) bool { return s == "x" || s == "X" || s == "*" }

// Check reports whether v satisfies the constraint. Prerelease versions never
// match the compiled forms, which hold no prereleases, as with the library.
func (c *constraint) Check(v *semver.Version) bool {
	if c.groups == nil {
		return c.slow.Check(v)
	}
	if v.Prerelease() != "" {
		return false
	}
	for _, and := range c.groups {
		ok := true
		for _, cmp := range and {
			r := v.Compare(cmp.v)
			switch cmp.op {
			case opEQ:
				ok = r == 0
			case opNE:
				ok = r != 0
			case opGT:
				ok = r > 0
			case opGE:
				ok = r >= 0
			case opLT:
				ok = r < 0
			case opLE:
				ok = r <= 0
			}
			if !ok {
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
