package console

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/runbook"
)

// runbookFields is the form of a runbook's parameters. A parameter with
// generate is optional: left empty, the run generates it.
func runbookFields(rb pkgspec.Runbook, posted map[string]string, errs map[string][]string) []field {
	var out []field
	for _, p := range rb.Parameters {
		out = append(out, paramField(p, nil, posted, errs))
	}
	return out
}

// runbookValues reads the posted parameters as strings, which the runbook
// converts as it does --set values; an empty one is not given.
func runbookValues(r *http.Request, rb pkgspec.Runbook) map[string]string {
	out := map[string]string{}
	for _, p := range rb.Parameters {
		key := "p." + p.Name
		if p.Type == pkgspec.TypeBool {
			out[p.Name] = strconv.FormatBool(slices.Contains(r.PostForm[key], "true"))
			continue
		}
		if v := r.PostFormValue(key); v != "" {
			out[p.Name] = v
		}
	}
	return out
}

// runbookData is a runbook's page: what it does, its form and its runs.
func (s *Server) runbookData(r *request, app, name string) (map[string]any, pkgspec.Runbook, error) {
	inst, err := s.env.Installed(r.Context(), app)
	if err != nil {
		return nil, pkgspec.Runbook{}, err
	}
	rb, err := runbook.Find(inst, name)
	if err != nil {
		return nil, pkgspec.Runbook{}, err
	}
	data := map[string]any{"Title": rb.Name + " · " + app, "Nav": "apps", "App": inst.App, "Runbook": rb, "Executable": rb.Executable(), "Fields": runbookFields(rb, nil, nil)}
	if rb.File != "" {
		if doc, err := fs.ReadFile(inst.Files, rb.File); err == nil {
			data["Document"] = string(doc)
		} else {
			data["DocumentErr"] = fmt.Sprintf("reading %s of the package: %v", rb.File, err)
		}
	}
	var steps []string
	for _, st := range rb.Steps {
		action, _ := st.Action()
		n := st.Name
		if n == "" {
			n = action
		}
		steps = append(steps, fmt.Sprintf("%s (%s)", n, action))
	}
	data["Steps"] = steps
	recs, err := runbook.Records(s.env.WS, app)
	if err != nil {
		data["RunsErr"] = err.Error()
	}
	var runs []*runbook.Record
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Runbook == rb.Name {
			runs = append(runs, recs[i])
		}
	}
	data["Runs"] = runs
	return data, rb, nil
}

func (s *Server) serveRunbook(w http.ResponseWriter, r *request) {
	data, _, err := s.runbookData(r, r.PathValue("app"), r.PathValue("runbook"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if m := r.URL.Query().Get("done"); m != "" {
		data["Flash"] = m
	}
	if m := r.URL.Query().Get("failed"); m != "" {
		data["Error"] = m
	}
	s.render(w, r, "runbook", data)
}

// postRunbook runs a runbook, or with dryrun set previews it, as 'berth
// runbook run APP NAME --set ... [--dry-run]' does: the parameters are
// checked by the runbook (types, bounds), then its checks, then the steps.
func (s *Server) postRunbook(w http.ResponseWriter, r *request) {
	app, name := r.PathValue("app"), r.PathValue("runbook")
	data, rb, err := s.runbookData(r, app, name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	posted := runbookValues(r.Request, rb)
	values := map[string]any{}
	for k, v := range posted {
		values[k] = v
	}
	dry := r.PostFormValue("dryrun") == "true"
	if !dry {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	rec, err := runbook.Run(r.asAuthor(), s.env, runbook.Options{App: app, Runbook: name, Values: values, DryRun: dry})
	if rec == nil {
		byParam, general, isConfig := runbookErrors(err)
		if isConfig {
			data["Fields"] = runbookFields(rb, posted, byParam)
			data["FormErrors"] = general
			data["Error"] = "Nothing ran: fix the fields marked below."
		} else {
			data["Fields"] = runbookFields(rb, posted, nil)
			data["Error"] = "Nothing ran: " + err.Error()
		}
		w.WriteHeader(http.StatusUnprocessableEntity)
		s.render(w, r, "runbook", data)
		return
	}
	if dry {
		data["Fields"] = runbookFields(rb, posted, nil)
		data["Plan"] = rec
		s.render(w, r, "runbook", data)
		return
	}
	slog.Info("console: ran a runbook", "app", app, "runbook", name, "status", rec.Status, "user", r.user.Name)
	_ = s.reload(r.Context())
	key, msg := "done", fmt.Sprintf("Runbook %s %s (recorded in %s).", name, lower(string(rec.Status)), rec.Path())
	var se *runbook.StepError
	if errors.As(err, &se) {
		key, msg = "failed", fmt.Sprintf("Runbook %s failed at step %d (%s): %v. State: %s To go on: %s", name, se.Step, se.Name, se.Err, rec.State, rec.Next)
	} else if err != nil {
		key, msg = "failed", fmt.Sprintf("Runbook %s ended with an error: %v", name, err)
	}
	http.Redirect(w, r.Request, "/apps/"+url.PathEscape(app)+"/runbooks/"+url.PathEscape(name)+"?"+key+"="+url.QueryEscape(msg), http.StatusSeeOther)
}

func lower(s string) string { return strings.ToLower(s) }

// runbookErrors spreads a runbook's parameter errors over its fields, as the
// configuration form's are: the message and what to do.
func runbookErrors(err error) (map[string][]string, []string, bool) {
	var pe *pkgspec.ParamsError
	if !errors.As(err, &pe) {
		return nil, nil, false
	}
	byParam := map[string][]string{}
	var general []string
	for _, ve := range pe.Errors {
		msg := ve.Msg
		if ve.Fix != "" {
			msg += "; " + ve.Fix
		}
		if ve.Param == "" {
			general = append(general, msg)
			continue
		}
		byParam[ve.Param] = append(byParam[ve.Param], msg)
	}
	return byParam, general, true
}
