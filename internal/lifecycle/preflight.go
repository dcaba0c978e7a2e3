package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/deploy"
)

// PreflightError lists what the cluster would refuse of a change; nothing was
// committed. In a fleet, Clusters are the clusters that refused (or could
// not be asked), and each problem names its cluster.
type PreflightError struct {
	Problems []string
	Clusters []string
}

func (e *PreflightError) Error() string {
	who := "the cluster"
	switch len(e.Clusters) {
	case 0:
	case 1:
		who = "cluster " + e.Clusters[0]
	default:
		who = "clusters " + strings.Join(e.Clusters, ", ")
	}
	return fmt.Sprintf("%s would refuse this change, so nothing was committed:\n  %s", who, strings.Join(e.Problems, "\n  "))
}

// Bounds of a fleet preflight's work on each cluster: how long the cluster
// has to answer at all (as the fleet status waits), and how long its whole
// dry run may take.
const (
	fleetPreflightReach   = 10 * time.Second
	fleetPreflightTimeout = 2 * time.Minute
)

// preflightFleet runs the preflight of every cluster that gets new objects,
// all at once, each bounded as the fleet status bounds its reads. A cluster
// that cannot be reached, does not answer in time, or would refuse an
// object refuses the change, named in the error; the others are still
// checked, so one error lists every cluster's problems.
func (e *Env) preflightFleet(ctx context.Context, p *plan, writes fleetWrites) error {
	clusters := slices.Sorted(maps.Keys(writes))
	problems := make([][]string, len(clusters))
	var wg sync.WaitGroup
	for i, c := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			problems[i] = e.ForCluster(c).preflightCluster(ctx, p, writes[c])
		}()
	}
	wg.Wait()
	out := &PreflightError{}
	for i, ps := range problems {
		if len(ps) > 0 {
			out.Clusters = append(out.Clusters, clusters[i])
			out.Problems = append(out.Problems, ps...)
		}
	}
	if len(out.Problems) > 0 {
		return out
	}
	return nil
}

// preflightCluster is the preflight of one fleet cluster; what it finds is
// returned as problems naming the cluster.
func (e *Env) preflightCluster(ctx context.Context, p *plan, rendered map[string][]*unstructured.Unstructured) []string {
	cluster := e.FleetCluster
	ctx, cancel := context.WithTimeout(ctx, fleetPreflightTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		if err := e.CheckClusterWithin(ctx, fleetPreflightReach); err != nil {
			done <- err
			return
		}
		done <- e.preflight(ctx, p, rendered)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("no answer within %s", fleetPreflightTimeout)
	}
	if err == nil {
		return nil
	}
	var pe *PreflightError
	if errors.As(err, &pe) {
		out := make([]string, len(pe.Problems))
		for i, pr := range pe.Problems {
			out[i] = "cluster " + cluster + ", " + pr
		}
		return out
	}
	return []string{fmt.Sprintf("cluster %s: %v", cluster, err)}
}

// preflight plans the rendered apps against the cluster: a server-side dry run
// of every object that would change. Kinds that a CRD of the same change
// defines are not checked (their CRD is applied first, and may not exist yet
// or differ); a Job's template is immutable but the engine re-creates a Job
// whose template changed.
func (e *Env) preflight(ctx context.Context, p *plan, rendered map[string][]*unstructured.Unstructured) error {
	eng, err := e.engine()
	if err != nil {
		return err
	}
	defined := map[string]bool{}
	for _, objs := range rendered {
		for _, o := range objs {
			if o.GetKind() == "CustomResourceDefinition" {
				g, _, _ := unstructured.NestedString(o.Object, "spec", "group")
				k, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
				defined[g+"/"+k] = true
			}
		}
	}
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(rendered)) {
		objs, err := deploy.StripIgnoredFields(rendered[name])
		if err != nil {
			return err
		}
		res, err := eng.Plan(ctx, objs, apply.PlanOptions{App: name, Namespace: p.apps[name].Namespace})
		var failed *apply.ObjectsError
		if err != nil && (res == nil || !errors.As(err, &failed)) {
			return fmt.Errorf("checking app %s against the cluster: %w", name, err)
		}
		for _, c := range res.Changes {
			if c.Action != apply.ActionFail {
				continue
			}
			switch {
			case defined[c.Object.Group+"/"+c.Object.Kind]:
				// Its CRD is applied first by this change; until then the
				// kind is unknown, or served by an older CRD.
				continue
			case c.Object.Kind == "Job" && c.Object.Group == "batch" && strings.Contains(c.Error, "field is immutable"):
				continue
			case c.Object.Kind == "StatefulSet" && strings.Contains(c.Error, "Forbidden") && strings.Contains(c.Error, "spec"):
				problems = append(problems, fmt.Sprintf("app %s, %s: a StatefulSet's volume claim templates and most of its spec cannot change in place (%s); change it back, or uninstall and reinstall the app", name, c.Object, c.Error))
				continue
			}
			problems = append(problems, fmt.Sprintf("app %s, %s: %s", name, c.Object, c.Error))
		}
	}
	if len(problems) > 0 {
		return &PreflightError{Problems: problems}
	}
	return nil
}
