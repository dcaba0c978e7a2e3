package packagetest

import (
	"fmt"

	"github.com/prometheus/prometheus/promql/parser"

	"berth.dev/berth/internal/render"
)

// CheckPromQL: every alert expression and panel query parses as PromQL, with
// Prometheus's own parser (package.yaml's loader checks brackets and quotes
// only).
const CheckPromQL Check = "promql"

// promql parses the package's alert expressions and panel queries as
// Prometheus would, after putting a sample app and namespace in place of
// {{ .App }} and {{ .Namespace }}.
func (l *linter) promql() {
	for i, a := range l.s.pkg.Alerts {
		if err := parsePromQL(a.Expr); err != nil {
			l.add(CheckPromQL, SeverityError, fmt.Sprintf("alerts[%d].expr", i), "write an expression Prometheus accepts", "alert %s: %v", a.Name, err)
		}
	}
	for i, p := range l.s.pkg.Panels {
		if err := parsePromQL(p.Query); err != nil {
			l.add(CheckPromQL, SeverityError, fmt.Sprintf("panels[%d].query", i), "write a query Prometheus accepts", "panel %q: %v", p.Title, err)
		}
	}
}

func parsePromQL(q string) error {
	_, err := parser.ParseExpr(render.SubstituteQuery(q, "app", "namespace"))
	return err
}
