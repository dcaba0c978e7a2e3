package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrNoController means no berth controller manages the workspace's cluster,
// so there is nothing to suspend, resume or ask to reconcile.
var ErrNoController = errors.New("no berth controller follows this workspace in its cluster")

// SetSuspended suspends an app (the controller neither applies new commits to
// it nor repairs its drift) or resumes it, on the Workspace of the controller
// that manages the workspace's cluster, as 'berth suspend' and 'berth resume' do.
func (e *Env) SetSuspended(ctx context.Context, app string, suspend bool) error {
	c, err := e.Controller(ctx)
	if err != nil {
		return err
	}
	if c == nil {
		return ErrNoController
	}
	ws := c.Workspace.DeepCopy()
	patch := client.MergeFrom(ws.DeepCopy())
	var apps []string
	for _, a := range ws.Spec.SuspendedApps {
		if a != app {
			apps = append(apps, a)
		}
	}
	if suspend {
		apps = append(apps, app)
	}
	ws.Spec.SuspendedApps = apps
	if err := c.client.Patch(ctx, ws, patch); err != nil {
		return fmt.Errorf("updating Workspace %s/%s: %w", ws.Namespace, ws.Name, err)
	}
	c.Workspace = ws
	return nil
}

// RequestReconcile asks the controller that manages the workspace's cluster to
// fetch and apply every app now, without waiting for its next poll; it
// returns the stamp the controller reports back as handled.
func (e *Env) RequestReconcile(ctx context.Context) (string, error) {
	c, err := e.Controller(ctx)
	if err != nil {
		return "", err
	}
	if c == nil {
		return "", ErrNoController
	}
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	return stamp, c.requestReconcile(ctx, stamp)
}
