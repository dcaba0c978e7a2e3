package console

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/client-go/util/retry"
	crclient "sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/incident"
)

// incidentNamespace is where this workspace's incidents live: the
// controller's Workspace's namespace, or every namespace when no controller
// follows the repository.
func (s *Server) incidentNamespace() string {
	if ws := s.controllerWorkspace(); ws != nil {
		return ws.Namespace
	}
	return ""
}

// openIncidents counts the app's incidents that are not resolved.
func (s *Server) openIncidents(ns string) map[string]int {
	out := map[string]int{}
	for _, i := range s.cache.incidentsOf(ns, "") {
		if i.Status.State != berthv1.IncidentResolved {
			out[i.Spec.App]++
		}
	}
	return out
}

var incidentStates = []string{"unresolved", string(berthv1.IncidentOpen), string(berthv1.IncidentAcknowledged), string(berthv1.IncidentResolved), "all"}

func (s *Server) serveIncidents(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "unresolved"
	}
	app := q.Get("app")
	var shown []berthv1.Incident
	for _, i := range s.cache.incidentsOf(s.incidentNamespace(), app) {
		switch state {
		case "all":
		case "unresolved":
			if i.Status.State == berthv1.IncidentResolved {
				continue
			}
		default:
			if string(i.Status.State) != state {
				continue
			}
		}
		shown = append(shown, i)
	}
	data := map[string]any{"Title": "Incidents", "Nav": "incidents", "Incidents": shown, "State": state, "States": incidentStates, "AppFilter": app,
		"API": s.cache != nil && s.cache.incidents != nil}
	if m := q.Get("done"); m != "" {
		data["Flash"] = m
	}
	s.render(w, r, "incidents", data)
}

func (s *Server) incident(ns, name string) *berthv1.Incident {
	for _, i := range s.cache.incidentsOf(ns, "") {
		if i.Name == name {
			return &i
		}
	}
	return nil
}

func (s *Server) serveIncident(w http.ResponseWriter, r *request) {
	inc := s.incident(r.PathValue("ns"), r.PathValue("name"))
	if inc == nil {
		http.NotFound(w, r.Request)
		return
	}
	data := map[string]any{"Title": inc.Name, "Nav": "incidents", "Incident": inc}
	if m := r.URL.Query().Get("done"); m != "" {
		data["Flash"] = m
	}
	s.render(w, r, "incident", data)
}

// postIncident acknowledges or resolves an incident, as 'berth incidents ack'
// and 'resolve' do, by the signed-in person.
func (s *Server) postIncident(resolve bool) func(http.ResponseWriter, *request) {
	return func(w http.ResponseWriter, r *request) {
		ns, name := r.PathValue("ns"), r.PathValue("name")
		if s.incident(ns, name) == nil {
			http.NotFound(w, r.Request)
			return
		}
		rec, err := s.incidentRecorder()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		who := r.user.Name
		if r.user.Email != "" {
			who += " <" + r.user.Email + ">"
		}
		note := strings.TrimSpace(r.PostFormValue("note"))
		act := rec.Acknowledge
		if resolve {
			act = rec.Resolve
		}
		var inc *berthv1.Incident
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var err error
			inc, err = act(r.Context(), ns, name, who, note)
			return err
		})
		if err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			s.render(w, r, "incident", map[string]any{"Title": name, "Nav": "incidents", "Incident": s.incident(ns, name), "Error": err.Error()})
			return
		}
		slog.Info("console: incident", "incident", ns+"/"+name, "state", inc.Status.State, "user", r.user.Name)
		msg := fmt.Sprintf("Incident %s is %s.", inc.Name, strings.ToLower(string(inc.Status.State)))
		http.Redirect(w, r.Request, "/incidents/"+url.PathEscape(ns)+"/"+url.PathEscape(name)+"?done="+url.QueryEscape(msg), http.StatusSeeOther)
	}
}

func (s *Server) incidentRecorder() (*incident.Recorder, error) {
	if s.opts.Cluster == nil {
		return nil, fmt.Errorf("the console serves no cluster")
	}
	c, err := crclient.New(s.opts.Cluster, crclient.Options{Scheme: kubeScheme()})
	if err != nil {
		return nil, err
	}
	return &incident.Recorder{Client: c}, nil
}
