package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"berth.dev/berth/internal/lifecycle"
)

// StatusOptions configures ReadStatus.
type StatusOptions struct {
	// Apps narrows the status to these apps; every app when empty.
	Apps []string
	// Timeout bounds the read of each cluster; a cluster that does not
	// answer in time is reported unreachable.
	Timeout time.Duration
}

// DefaultStatusOptions reads every app, ten seconds per cluster.
func DefaultStatusOptions() StatusOptions { return StatusOptions{Timeout: 10 * time.Second} }

// ClusterStatus is one cluster's part of the fleet status.
type ClusterStatus struct {
	Cluster   string `json:"cluster"`
	Reachable bool   `json:"reachable"`
	// Error says why the cluster could not be read.
	Error string `json:"error,omitempty"`
	// Apps are the apps placed on the cluster, as lifecycle.Status reports
	// them there (version, health, drift, revision).
	Apps []lifecycle.AppStatus `json:"apps"`
}

// Status is the fleet: every cluster, in berth.yaml's order.
type Status struct {
	Clusters []ClusterStatus `json:"clusters"`
}

// ReadStatus reads every cluster of env's fleet workspace at once, each
// within opts.Timeout; a cluster that cannot be read is reported as such
// and the others are still read.
func ReadStatus(ctx context.Context, env *lifecycle.Env, opts StatusOptions) (*Status, error) {
	clusters := env.WS.Config.Clusters
	if len(clusters) == 0 {
		return nil, errors.New("the workspace has no clusters")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultStatusOptions().Timeout
	}
	out := &Status{Clusters: make([]ClusterStatus, len(clusters))}
	var wg sync.WaitGroup
	for i, c := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out.Clusters[i] = readCluster(ctx, env.ForCluster(c.Name), opts)
		}()
	}
	wg.Wait()
	return out, nil
}

func readCluster(ctx context.Context, env *lifecycle.Env, opts StatusOptions) ClusterStatus {
	st := ClusterStatus{Cluster: env.FleetCluster, Apps: []lifecycle.AppStatus{}}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	type result struct {
		apps []lifecycle.AppStatus
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// A cluster that does not answer at all is found in a few seconds,
		// not after every app's reads time out.
		if err := env.CheckClusterWithin(ctx, opts.Timeout); err != nil {
			done <- result{err: err}
			return
		}
		apps, err := env.Status(ctx, opts.Apps...)
		done <- result{apps, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			var ue *lifecycle.UnreachableError
			st.Reachable = !errors.As(r.err, &ue)
			st.Error = r.err.Error()
			return st
		}
		st.Reachable = true
		st.Apps = append(st.Apps, r.apps...)
	case <-ctx.Done():
		st.Error = fmt.Sprintf("no answer within %s", opts.Timeout)
	}
	return st
}
