package cli

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"berth.dev/berth/internal/lifecycle"
)

// printStatus writes the table of 'berth status' and, under it, why each app
// is not healthy and what has drifted.
func printStatus(w io.Writer, st []lifecycle.AppStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tPACKAGE\tVERSION\tNAMESPACE\tHEALTH\tREVISION\tUPGRADE\tOBJECTS")
	for _, s := range st {
		pkg := s.Package
		if s.Shared {
			pkg += " (shared)"
		}
		rev := s.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.App, pkg, s.Version, s.Namespace, s.Summary(),
			dash(rev), dash(s.UpgradeAvailable), strconv.Itoa(s.Objects))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range st {
		for _, o := range s.NotReady {
			fmt.Fprintf(w, "  %s: %s %s: %s\n", s.App, o.Object, o.Status, o.Message)
		}
		for _, d := range s.Drift {
			line := fmt.Sprintf("  %s: %s drifted, a deploy would %s it", s.App, d.Object, d.Action)
			if d.Reason != "" {
				line += ": " + d.Reason
			}
			fmt.Fprintln(w, line)
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
