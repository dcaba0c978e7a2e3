package lifecycle

import (
	"context"
	"errors"
	"sort"
	"time"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/resolve"
)

// Health of an app.
const (
	HealthHealthy     = "Healthy"
	HealthProgressing = "Progressing"
	HealthFailed      = "Failed"
	HealthNotDeployed = "NotDeployed"
)

// AppStatus describes an installed app and its health in the cluster.
type AppStatus struct {
	App       string          `json:"app"`
	Package   string          `json:"package"`
	Version   string          `json:"version"`
	Channel   string          `json:"channel,omitempty"`
	Namespace string          `json:"namespace"`
	Shared    bool            `json:"shared,omitempty"`
	Health    string          `json:"health"`
	Objects   int             `json:"objects"`
	NotReady  []ObjectProblem `json:"notReady,omitempty"`
}

// ObjectProblem is an object that is not healthy, and why.
type ObjectProblem struct {
	Object  string `json:"object"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Status reports the named apps (all when none is named): their package and
// version from the workspace, and their health from the objects the cluster
// holds for them.
func (e *Env) Status(ctx context.Context, names ...string) ([]AppStatus, error) {
	apps, err := e.workspaceApps()
	if err != nil {
		return nil, err
	}
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, err
	}
	ordered, err := e.order(names)
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		ordered = names
	}
	eng, err := e.engine()
	if err != nil {
		return nil, err
	}
	var out []AppStatus
	for _, name := range ordered {
		a := apps[name]
		st := AppStatus{App: name, Package: a.Package, Channel: a.Channel, Namespace: a.Namespace, Shared: a.Shared}
		if in, ok := lock.Get(resolve.AppKey(name)); ok {
			st.Version = in.Version
		}
		inv, err := eng.Inventory(ctx, name, a.Namespace)
		if err != nil {
			return nil, err
		}
		refs := make([]apply.ObjectRef, 0, len(inv.Entries))
		for _, en := range inv.Entries {
			refs = append(refs, en.Ref())
		}
		st.Objects = len(refs)
		if len(refs) == 0 {
			st.Health = HealthNotDeployed
			out = append(out, st)
			continue
		}
		// A short settle: healthy apps answer at the first read.
		_, err = eng.Wait(ctx, refs, apply.WaitOptions{App: name, Timeout: 2 * time.Second})
		var nr *apply.NotReadyError
		switch {
		case err == nil:
			st.Health = HealthHealthy
		case errors.As(err, &nr):
			st.Health = HealthProgressing
			if nr.Failed {
				st.Health = HealthFailed
			}
			for obj, res := range nr.NotReady {
				st.NotReady = append(st.NotReady, ObjectProblem{Object: obj, Status: string(res.Status), Message: res.Message})
			}
			sort.Slice(st.NotReady, func(i, j int) bool { return st.NotReady[i].Object < st.NotReady[j].Object })
		default:
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}
