package catalog

import "fmt"

// Problem is one entry of a catalog that berth skipped because it cannot be
// used: a package version that does not load, a version that is not semantic,
// an archive without a digest, a channel that points nowhere. The rest of the
// catalog stays usable; callers show the problems as warnings.
type Problem struct {
	// Catalog is the catalog's name once a Set reports it; Where is its path or URL.
	Catalog string `json:"catalog,omitempty"`
	Where   string `json:"where"`
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
	// Channel is set when only a channel was dropped.
	Channel string `json:"channel,omitempty"`
	Reason  string `json:"reason"`
}

func (p Problem) String() string {
	s := "catalog " + p.Where
	if p.Catalog != "" && p.Catalog != p.Where {
		s = fmt.Sprintf("catalog %s (%s)", p.Catalog, p.Where)
	}
	switch {
	case p.Channel != "":
		s += fmt.Sprintf(": package %s: channel %s skipped: %s", p.Package, p.Channel, p.Reason)
	case p.Version != "":
		s += fmt.Sprintf(": package %s version %s skipped: %s", p.Package, p.Version, p.Reason)
	case p.Package != "":
		s += fmt.Sprintf(": package %s skipped: %s", p.Package, p.Reason)
	default:
		s += ": " + p.Reason
	}
	return s
}
