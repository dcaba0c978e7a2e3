package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"

	"k8s.io/client-go/kubernetes"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/logs"
)

// logTail is how many lines of each container's log a page starts with.
const logTail = 200

// clients are the console's clients of the cluster for what the caches do
// not hold: an app's inventory and its pods' logs.
type clients struct {
	kube   kubernetes.Interface
	engine *apply.Engine
}

func (s *Server) clients() (*clients, error) {
	s.clientsOnce.Do(func() {
		if s.opts.Cluster == nil {
			s.clientsErr = fmt.Errorf("the console serves no cluster")
			return
		}
		kube, err := kubernetes.NewForConfig(s.opts.Cluster)
		if err != nil {
			s.clientsErr = err
			return
		}
		eng, err := apply.NewEngine(s.opts.Cluster, apply.DefaultOptions())
		if err != nil {
			s.clientsErr = err
			return
		}
		s.kube = &clients{kube: kube, engine: eng}
	})
	return s.kube, s.clientsErr
}

// components are the names of an app's workloads in git, which the logs'
// component filter accepts (logs.Select matches a workload's name).
func components(g *gitApp) []string {
	var out []string
	for _, o := range g.Objects {
		switch o.GK.Kind {
		case "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod":
			if !slices.Contains(out, o.Name) {
				out = append(out, o.Name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// logEvent is one line as the page receives it: JSON, which the page puts
// into the document as text (never as HTML).
type logEvent struct {
	Pod       string `json:"pod,omitempty"`
	Container string `json:"container,omitempty"`
	Text      string `json:"text,omitempty"`
	Err       string `json:"error,omitempty"`
}

// writeSSE writes one server-sent event of type typ whose data is v as JSON
// (one line: JSON escapes newlines, so a log line cannot end the event or
// start another).
func writeSSE(w io.Writer, typ string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, b)
	return err
}

// serveLogs follows the logs of the app's pods (of one component, when
// asked) as server-sent events, as 'berth logs -f' does, until the page
// closes the stream.
func (s *Server) serveLogs(w http.ResponseWriter, r *request) {
	app := r.PathValue("app")
	g, ok := s.gitView().Apps[app]
	if !ok {
		http.NotFound(w, r.Request)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	s.logStreams.Add(1)
	defer s.logStreams.Add(-1)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	fmt.Fprint(w, "retry: 5000\n\n")
	lines, err := s.followLogs(ctx, app, g.App.Namespace, r.URL.Query().Get("component"))
	if err != nil {
		_ = writeSSE(w, "failed", logEvent{Err: err.Error()})
		fl.Flush()
		return
	}
	_ = writeSSE(w, "started", logEvent{})
	fl.Flush()
	for l := range lines {
		ev := logEvent{Pod: l.Pod, Container: l.Container, Text: l.Text}
		if l.Err != nil {
			ev.Err = l.Err.Error()
		}
		if err := writeSSE(w, "line", ev); err != nil {
			return
		}
		// Flush once the lines that came together are written.
		if len(lines) == 0 {
			fl.Flush()
		}
	}
}

// followLogs selects the app's pods from its inventory in the cluster and
// follows their logs.
func (s *Server) followLogs(ctx context.Context, app, namespace, component string) (<-chan logs.Line, error) {
	c, err := s.clients()
	if err != nil {
		return nil, err
	}
	inv, err := c.engine.Inventory(ctx, app, namespace)
	if err != nil {
		return nil, err
	}
	if len(inv.Entries) == 0 {
		return nil, fmt.Errorf("app %s is not deployed to the cluster (no inventory in namespace %s)", app, namespace)
	}
	var refs []apply.ObjectRef
	for _, e := range inv.Entries {
		refs = append(refs, e.Ref())
	}
	sel, err := logs.Select(ctx, c.kube, app, refs, component)
	if err != nil {
		return nil, err
	}
	return logs.Stream(ctx, c.kube, sel, logs.Options{Follow: true, TailLines: logTail})
}
