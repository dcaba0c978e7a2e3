package lifecycle

import (
	"context"
	"fmt"

	"berth.dev/berth/internal/workspace"
)

// writing takes the workspace lock for an operation that changes the
// workspace, from before it reads the workspace until it returns, so that two
// commands never interleave their reads and commits. Waiting for another
// command, and finishing one that was killed half-way, are reported as notes.
func (e *Env) writing(ctx context.Context) (release func(), err error) {
	return e.WS.Acquire(ctx, workspace.LockOptions{
		Timeout: e.LockTimeout,
		Waiting: func(h workspace.Holder) {
			e.emit(Event{Note: true, Message: fmt.Sprintf("waiting for another berth command (pid %d, `%s`) to finish", h.PID, h.Command)})
		},
		Recovered: func(r workspace.Recovery) { e.emit(Event{Note: true, Message: r.String()}) },
	})
}
