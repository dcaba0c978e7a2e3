package pkgspec

import (
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
)

type compiledExpr struct {
	src  string
	prog cel.Program
}

type compiledRule struct {
	Rule
	expr *compiledExpr
}

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(cel.Variable("self", cel.MapType(cel.StringType, cel.DynType)))
})

func compileBool(env *cel.Env, src string) (*compiledExpr, error) {
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("invalid CEL expression: %w", iss.Err())
	}
	if t := ast.OutputType(); t != types.BoolType && t != types.DynType {
		return nil, fmt.Errorf("the expression is of type %s; it must be true or false", t)
	}
	prog, err := env.Program(ast, cel.CostLimit(1_000_000))
	if err != nil {
		return nil, fmt.Errorf("invalid CEL expression: %w", err)
	}
	return &compiledExpr{src: src, prog: prog}, nil
}

// eval runs the expression over self. An evaluation error (a missing key, a type
// mismatch) is returned as an error, never swallowed into false.
func (c *compiledExpr) eval(self map[string]any) (bool, error) {
	out, _, err := c.prog.Eval(map[string]any{"self": self})
	if err != nil {
		return false, fmt.Errorf("%q cannot be evaluated: %w", c.src, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("%q returned %v, not true or false", c.src, out.Value())
	}
	return b, nil
}
