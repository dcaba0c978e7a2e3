package cli

import "berth.dev/berth/internal/apply"

// exitPlanChanges is the exit status of 'berth plan --exit-code' when
// something would change.
const exitPlanChanges = 2

// planExit returns the error that makes 'berth plan --exit-code' exit 2 when
// one of results would create, update or delete an object.
func planExit(exitCode bool, results ...*apply.Result) error {
	if !exitCode {
		return nil
	}
	for _, r := range results {
		for _, c := range r.Changes {
			switch c.Action {
			case apply.ActionCreate, apply.ActionUpdate, apply.ActionDelete:
				return &exitCodeError{code: exitPlanChanges}
			}
		}
	}
	return nil
}
