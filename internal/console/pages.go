package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/health"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/pkgspec"
)

// render writes page inside the layout (or, for an htmx request that names
// a fragment, that template alone).
func (s *Server) render(w http.ResponseWriter, r *request, page string, data map[string]any) {
	t, ok := s.pages[page]
	if !ok {
		http.Error(w, "no page "+page, http.StatusInternalServerError)
		return
	}
	if data == nil {
		data = map[string]any{}
	}
	name := "layout"
	if r != nil {
		data["User"] = r.user
		data["CSRF"] = r.sess.csrf
		data["Operator"] = r.user.Role >= RoleOperator
		data["Admin"] = r.user.Role >= RoleAdmin
		if f := r.Header.Get("HX-Target"); f != "" && r.Header.Get("HX-Request") == "true" && t.Lookup(f) != nil {
			name = f
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		slog.Error("console: rendering", "page", page, "err", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// controllerWorkspace returns the Workspace of the controller that manages
// this repository, from the cache; nil when none does.
func (s *Server) controllerWorkspace() *berthv1.Workspace {
	key, _ := s.follow.Load().(string)
	ns, name, ok := strings.Cut(key, "/")
	if !ok {
		return nil
	}
	return s.cache.workspace(ns, name)
}

// rows returns the overview's rows that f selects, from the rows computed
// since the last change.
func (s *Server) rows(f Filter) []Row {
	all := s.allRows()
	var out []Row
	for _, r := range all {
		if f.match(r) {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) allRows() []Row {
	s.rowsMu.Lock()
	defer s.rowsMu.Unlock()
	// Read the counter before computing: a change during the computation
	// makes the next request compute again.
	at := s.changes.Load()
	if s.rowsCache != nil && s.rowsAt == at {
		return s.rowsCache
	}
	s.rowsCache, s.rowsAt = s.computeRows(), at
	return s.rowsCache
}

func (s *Server) computeRows() []Row {
	v := s.gitView()
	ws := s.controllerWorkspace()
	status := map[string]*berthv1.AppStatus{}
	if ws != nil {
		status = s.cache.appStates(ws.Namespace, ws.Name)
	}
	incidents := s.openIncidents(s.incidentNamespace())
	var out []Row
	for _, name := range v.Names {
		g := v.Apps[name]
		r := row(g, s.cache.appObjects(name), s.cache, status[name], ws)
		r.Incidents = incidents[name]
		out = append(out, r)
	}
	return out
}

var healthChoices = []string{lifecycle.HealthHealthy, lifecycle.HealthProgressing, lifecycle.HealthFailed, lifecycle.HealthNotDeployed, "drifted", "suspended", "incidents"}

func (s *Server) serveOverview(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	f := Filter{Query: q.Get("q"), Health: q.Get("health")}
	page, _ := strconv.Atoi(q.Get("page"))
	rows := s.rows(f)
	size := s.opts.PageSize
	pages := max(1, (len(rows)+size-1)/size)
	page = min(max(page, 1), pages)
	shown := rows[(page-1)*size : min(page*size, len(rows))]
	link := func(p int) string {
		v := url.Values{}
		if f.Query != "" {
			v.Set("q", f.Query)
		}
		if f.Health != "" {
			v.Set("health", f.Health)
		}
		v.Set("page", strconv.Itoa(p))
		return "/?" + v.Encode()
	}
	data := map[string]any{
		"Title": "Apps", "Nav": "apps", "Rows": shown, "Total": len(rows), "All": len(s.gitView().Names),
		"Filter": f, "Healths": healthChoices, "Page": page, "Pages": pages, "Controller": s.controllerWorkspace() != nil,
		"Self": link(page),
	}
	if m := q.Get("done"); m != "" {
		data["Flash"] = m
	}
	if page > 1 {
		data["Prev"] = link(page - 1)
	}
	if page < pages {
		data["Next"] = link(page + 1)
	}
	s.render(w, r, "overview", data)
}

// treeNode is an object of an app, with its pods when it runs any.
type treeNode struct {
	Kind, Name, Namespace string
	Health, Message       string
	Watched, Missing      bool
	Pods                  []podNode
}

type podNode struct {
	Name, Phase, Health, Message string
}

type eventRow struct {
	Type, Reason, Object, Message, When string
	Count                               int64
}

func (s *Server) appTree(app string) ([]treeNode, []eventRow, bool) {
	v := s.gitView()
	g, ok := v.Apps[app]
	if !ok {
		return nil, nil, false
	}
	live := s.cache.appObjects(app)
	var nodes []treeNode
	var uids []string
	for _, o := range g.Objects {
		n := treeNode{Kind: o.GK.Kind, Name: o.Name, Namespace: o.Namespace, Watched: s.cache.watches(o.GK)}
		if l, ok := live[o.key()]; ok {
			n.Health, n.Message = fromStatus(l.health.Status), l.health.Message
			uids = append(uids, string(l.obj.GetUID()))
			if health.IsWorkload(l.obj) {
				for _, p := range s.cache.podsOf(l.obj) {
					ph, _, _ := unstructured.NestedString(p.Object, "status", "phase")
					pr := health.Compute(p)
					if prob, bad := health.PodProblem(p); bad {
						pr = prob
					}
					n.Pods = append(n.Pods, podNode{Name: p.GetName(), Phase: ph, Health: fromStatus(pr.Status), Message: pr.Message})
					uids = append(uids, string(p.GetUID()))
				}
			}
		} else if n.Watched {
			n.Missing, n.Health, n.Message = true, "Missing", "in git, not in the cluster"
		}
		nodes = append(nodes, n)
	}
	var events []eventRow
	for _, e := range s.cache.eventsOf(uids...) {
		er := eventRow{}
		er.Type, _, _ = unstructured.NestedString(e.Object, "type")
		er.Reason, _, _ = unstructured.NestedString(e.Object, "reason")
		er.Message, _, _ = unstructured.NestedString(e.Object, "message")
		k, _, _ := unstructured.NestedString(e.Object, "involvedObject", "kind")
		nm, _, _ := unstructured.NestedString(e.Object, "involvedObject", "name")
		er.Object = k + "/" + nm
		er.Count, _, _ = unstructured.NestedInt64(e.Object, "count")
		er.When, _, _ = unstructured.NestedString(e.Object, "lastTimestamp")
		events = append(events, er)
		if len(events) == 50 {
			break
		}
	}
	return nodes, events, true
}

// field is a configuration parameter as the form shows it.
type field struct {
	pkgspec.Param
	Value    string
	Checked  bool
	IsSecret bool
	Errors   []string
	Input    string // text, number, checkbox, select, password
}

// formFields builds the form of pkg's parameters from current values (plain
// ones only: secret values never reach a page) and per-parameter errors.
func formFields(pkg *pkgspec.Package, current map[string]any, posted map[string]string, errs map[string][]string) []field {
	var out []field
	for _, p := range pkg.Config {
		if p.Generate != nil {
			continue // generated once and kept; not a choice
		}
		out = append(out, paramField(p, current, posted, errs))
	}
	return out
}

// paramField is one parameter on a form.
func paramField(p pkgspec.Param, current map[string]any, posted map[string]string, errs map[string][]string) field {
	f := field{Param: p, IsSecret: p.IsSecret(), Errors: errs[p.Name]}
	v, has := current[p.Name]
	if !has && p.Default != nil {
		v, has = p.Default, true
	}
	if f.IsSecret {
		// Secret values live in the encrypted secrets file, never here.
		v, has = nil, false
	}
	if has {
		f.Value = fmt.Sprint(v)
	}
	if pv, ok := posted[p.Name]; ok && !f.IsSecret {
		f.Value = pv
	}
	switch {
	case f.IsSecret:
		f.Input = "password"
	case p.Type == pkgspec.TypeBool:
		f.Input, f.Checked = "checkbox", f.Value == "true"
	case p.Type == pkgspec.TypeEnum:
		f.Input = "select"
	case p.Type == pkgspec.TypeInt:
		f.Input = "number"
	default:
		f.Input = "text"
	}
	return f
}

// formValues reads the posted parameters of pkg: strings, which Configure
// converts as it does --set values. An empty secret keeps its value.
func formValues(r *http.Request, pkg *pkgspec.Package) map[string]string {
	out := map[string]string{}
	for _, p := range pkg.Config {
		if p.Generate != nil {
			continue
		}
		key := "p." + p.Name
		if p.Type == pkgspec.TypeBool {
			out[p.Name] = strconv.FormatBool(slices.Contains(r.PostForm[key], "true"))
			continue
		}
		if _, ok := r.PostForm[key]; !ok {
			continue
		}
		v := r.PostFormValue(key)
		if p.IsSecret() && v == "" {
			continue
		}
		out[p.Name] = v
	}
	return out
}

// configErrors spreads a configuration error over the parameters it names;
// a rule naming several parameters shows its message at each of them.
func configErrors(err error) (map[string][]string, []string, bool) {
	var ce *pkgspec.ConfigError
	if !errors.As(err, &ce) {
		return nil, nil, false
	}
	byParam := map[string][]string{}
	var general []string
	for _, ve := range ce.Errors {
		msg := ve.Msg
		if ve.Param == "" {
			general = append(general, msg)
			continue
		}
		for _, p := range strings.Split(ve.Param, ", ") {
			byParam[p] = append(byParam[p], msg)
		}
	}
	return byParam, general, true
}

func (s *Server) appPackage(ctx context.Context, app string) (*pkgspec.Package, error) {
	g, ok := s.gitView().Apps[app]
	if !ok {
		return nil, fmt.Errorf("no app %s", app)
	}
	f, err := s.env.Catalogs.Find(ctx, g.App.Package)
	if err != nil {
		return nil, err
	}
	pkg, _, err := s.env.Catalogs.Load(ctx, f, g.Version)
	return pkg, err
}

func (s *Server) appData(r *request, app string) (map[string]any, bool) {
	v := s.gitView()
	g, ok := v.Apps[app]
	if !ok {
		return nil, false
	}
	var st Row
	for _, rr := range s.rows(Filter{Query: ""}) {
		if rr.Name == app {
			st = rr
		}
	}
	nodes, events, _ := s.appTree(app)
	data := map[string]any{"Components": components(g), "Cluster": s.opts.Cluster != nil, "Title": app, "Nav": "apps", "App": g.App, "Version": g.Version, "Row": st, "Tree": nodes, "Events": events, "RenderErr": g.Err, "Controller": s.controllerWorkspace() != nil}
	if revs, err := s.env.History(r.Context(), app); err == nil {
		data["History"] = revs
	} else {
		data["HistoryErr"] = err.Error()
	}
	if pkg, err := s.appPackage(r.Context(), app); err == nil {
		data["Fields"] = formFields(pkg, g.App.Values, nil, nil)
		data["Runbooks"] = pkg.Runbooks
		data["RevealBase"] = "/apps/" + app + "/secrets/"
	} else {
		data["ConfigErr"] = err.Error()
	}
	return data, true
}

func (s *Server) serveApp(w http.ResponseWriter, r *request) {
	data, ok := s.appData(r, r.PathValue("app"))
	if !ok {
		http.NotFound(w, r.Request)
		return
	}
	if m := r.URL.Query().Get("done"); m != "" {
		data["Flash"] = m
	}
	s.render(w, r, "app", data)
}

func (s *Server) serveTree(w http.ResponseWriter, r *request) {
	nodes, events, ok := s.appTree(r.PathValue("app"))
	if !ok {
		http.NotFound(w, r.Request)
		return
	}
	s.render(w, r, "app", map[string]any{"App": s.gitView().Apps[r.PathValue("app")].App, "Tree": nodes, "Events": events})
}

// serveDiff shows what a deploy would change, in the fields berth manages
// only: the deploy engine's plan (server-side dry runs of changed objects).
func (s *Server) serveDiff(w http.ResponseWriter, r *request) {
	app := r.PathValue("app")
	data := map[string]any{"App": s.gitView().Apps[app].App}
	res, err := s.env.Plan(r.Context(), app)
	if err != nil {
		data["DiffErr"] = err.Error()
	}
	type change struct{ Object, Action, Reason, Diff string }
	var changes []change
	for _, pr := range res {
		for _, c := range pr.Changes {
			if c.Action == apply.ActionUnchanged {
				continue
			}
			changes = append(changes, change{Object: c.Object.String(), Action: string(c.Action), Reason: c.Reason, Diff: c.Diff})
		}
	}
	data["Changes"] = changes
	data["DiffDone"] = true
	s.render(w, r, "app", data)
}

// deploy applies what a change committed, through the one deploy path (the
// controller when one manages the cluster).
func (s *Server) deploy(ctx context.Context, apps ...string) error {
	if s.opts.Cluster == nil {
		return nil
	}
	_, err := s.env.Deploy(ctx, lifecycle.DeployOptions{Apps: apps, Timeout: s.opts.DeployTimeout})
	return err
}

func (s *Server) done(w http.ResponseWriter, r *request, app, msg string) {
	_ = s.reload(r.Context())
	http.Redirect(w, r.Request, "/apps/"+url.PathEscape(app)+"?done="+url.QueryEscape(msg), http.StatusSeeOther)
}

func (s *Server) failed(w http.ResponseWriter, r *request, app string, err error) {
	_ = s.reload(r.Context())
	data, ok := s.appData(r, app)
	if !ok {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	data["Error"] = err.Error()
	s.render(w, r, "app", data)
}

func (s *Server) postConfig(w http.ResponseWriter, r *request) {
	app := r.PathValue("app")
	g, ok := s.gitView().Apps[app]
	if !ok {
		http.NotFound(w, r.Request)
		return
	}
	pkg, err := s.appPackage(r.Context(), app)
	if err != nil {
		s.failed(w, r, app, err)
		return
	}
	posted := formValues(r.Request, pkg)
	values := map[string]any{}
	for k, v := range posted {
		if p, _ := pkg.Param(k); p.IsSecret() || fmt.Sprint(currentOrDefault(g.App.Values, p)) != v {
			values[k] = v
		}
	}
	if len(values) == 0 {
		s.done(w, r, app, "Nothing changed.")
		return
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	res, err := s.env.Config(r.asAuthor(), lifecycle.ConfigOptions{App: app, Values: values})
	if byParam, general, isConfig := configErrors(err); isConfig {
		data, _ := s.appData(r, app)
		data["Fields"] = formFields(pkg, g.App.Values, posted, byParam)
		data["FormErrors"] = general
		data["Error"] = "The configuration was not changed: fix the fields marked below."
		w.WriteHeader(http.StatusUnprocessableEntity)
		s.render(w, r, "app", data)
		return
	}
	if err != nil {
		s.failed(w, r, app, err)
		return
	}
	if !res.Committed {
		s.done(w, r, app, "Nothing changed.")
		return
	}
	if err := s.deploy(r.Context(), app); err != nil {
		s.failed(w, r, app, fmt.Errorf("committed, but the deploy failed: %w", err))
		return
	}
	s.done(w, r, app, "Configured: set "+strings.Join(res.Set, ", ")+".")
}

func currentOrDefault(values map[string]any, p pkgspec.Param) any {
	if v, ok := values[p.Name]; ok {
		return v
	}
	if p.Default != nil {
		return p.Default
	}
	return ""
}

func (s *Server) postRollback(w http.ResponseWriter, r *request) {
	app := r.PathValue("app")
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	res, err := s.env.Rollback(r.asAuthor(), lifecycle.RollbackOptions{App: app, To: r.PostFormValue("revision")})
	if err != nil {
		s.failed(w, r, app, err)
		return
	}
	if err := s.deploy(r.Context(), app); err != nil {
		s.failed(w, r, app, fmt.Errorf("rolled back, but the deploy failed: %w", err))
		return
	}
	s.done(w, r, app, fmt.Sprintf("Rolled back to %.8s.", res.Revision))
}

func (s *Server) postSuspend(suspend bool) func(http.ResponseWriter, *request) {
	return func(w http.ResponseWriter, r *request) {
		app := r.PathValue("app")
		if err := s.env.SetSuspended(r.Context(), app, suspend); err != nil {
			s.failed(w, r, app, err)
			return
		}
		slog.Info("console: suspend", "app", app, "suspend", suspend, "user", r.user.Name)
		msg := "Resumed."
		if suspend {
			msg = "Suspended: the controller leaves this app alone until it is resumed."
		}
		s.done(w, r, app, msg)
	}
}

func (s *Server) postReconcile(w http.ResponseWriter, r *request) {
	app := r.PathValue("app")
	if _, err := s.env.RequestReconcile(r.Context()); err != nil {
		if !errors.Is(err, lifecycle.ErrNoController) {
			s.failed(w, r, app, err)
			return
		}
		// Without a controller the console applies, as the CLI does.
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		if err := s.deploy(r.Context(), app); err != nil {
			s.failed(w, r, app, err)
			return
		}
		s.done(w, r, app, "Deployed the workspace's state of the app.")
		return
	}
	s.done(w, r, app, "Asked the controller to reconcile now.")
}

func (s *Server) serveCatalog(w http.ResponseWriter, r *request) {
	q := r.URL.Query().Get("q")
	found, err := s.env.Catalogs.Search(r.Context(), q)
	data := map[string]any{"Title": "Catalog", "Nav": "catalog", "Query": q, "Packages": found}
	if err != nil {
		data["Error"] = err.Error()
	}
	s.render(w, r, "catalog", data)
}

// packageData describes a package at version, or without one at the
// version the workspace's default channel points to (what 'berth install
// NAME' installs, following that channel).
func (s *Server) packageData(r *request, name, version string) (map[string]any, *pkgspec.Package, error) {
	pinned := version
	f, err := s.env.Catalogs.Find(r.Context(), name)
	if err != nil {
		return nil, nil, err
	}
	if version == "" {
		ch := s.env.WS.Config.Defaults.Channel
		if ch == "" {
			ch = "stable"
		}
		version = f.Entry.Channels[ch]
		if version == "" && len(f.Entry.Versions) > 0 {
			version = f.Entry.Versions[0].Version
		}
	}
	pkg, _, err := s.env.Catalogs.Load(r.Context(), f, version)
	if err != nil {
		return nil, nil, err
	}
	var channels []string
	for _, c := range f.Entry.ChannelNames() {
		channels = append(channels, c+" → "+f.Entry.Channels[c])
	}
	return map[string]any{"Title": f.Entry.Name, "Nav": "catalog", "Entry": f.Entry, "Catalog": f.Catalog, "Package": pkg, "Version": version, "Pinned": pinned, "Channels": channels, "Fields": formFields(pkg, nil, nil, nil)}, pkg, nil
}

func (s *Server) servePackage(w http.ResponseWriter, r *request) {
	data, _, err := s.packageData(r, r.PathValue("pkg"), r.URL.Query().Get("version"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	s.render(w, r, "package", data)
}
