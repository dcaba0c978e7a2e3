package console

import (
	"net/http"
	"sort"

	"berth.dev/berth/internal/fleet"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/workspace"
)

// clusterView is one cluster of the fleet page.
type clusterView struct {
	workspace.ClusterEntry
	Labels    []string // key=value, sorted
	Reachable bool
	Error     string
	Apps      []lifecycle.AppStatus
	Healthy   int
}

// serveFleet shows the clusters of berth.yaml with their labels, whether
// they answer and their apps' health: what 'berth status' shows of a fleet
// (fleet.ReadStatus), each cluster read on request within a timeout.
func (s *Server) serveFleet(w http.ResponseWriter, r *request) {
	data := map[string]any{"Title": "Fleet", "Nav": "fleet"}
	cfg := s.env.WS.Config
	if !cfg.IsFleet() {
		s.render(w, r, "fleet", data)
		return
	}
	opts := fleet.DefaultStatusOptions()
	if s.opts.ClusterTimeout > 0 {
		opts.Timeout = s.opts.ClusterTimeout
	}
	data["Timeout"] = opts.Timeout.String()
	st, err := fleet.ReadStatus(r.Context(), s.env, opts)
	if err != nil {
		data["Error"] = err.Error()
		s.render(w, r, "fleet", data)
		return
	}
	byName := map[string]fleet.ClusterStatus{}
	for _, c := range st.Clusters {
		byName[c.Cluster] = c
	}
	var views []clusterView
	for _, c := range cfg.Clusters {
		v := clusterView{ClusterEntry: c}
		for k, val := range c.Labels {
			v.Labels = append(v.Labels, k+"="+val)
		}
		sort.Strings(v.Labels)
		if cs, ok := byName[c.Name]; ok {
			v.Reachable, v.Error, v.Apps = cs.Reachable, cs.Error, cs.Apps
			for _, a := range cs.Apps {
				if a.Health == lifecycle.HealthHealthy {
					v.Healthy++
				}
			}
		}
		views = append(views, v)
	}
	data["Clusters"] = views
	s.render(w, r, "fleet", data)
}
