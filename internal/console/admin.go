package console

import (
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"berth.dev/berth/internal/lifecycle"
)

// postUninstall removes the app from the cluster and the workspace, as
// 'berth uninstall APP' does, once the person typed the app's name; its
// data (volume claims, kept secrets) goes only with the separate choice to
// delete it, confirmed by typing the name again, as --delete-data asks.
func (s *Server) postUninstall(w http.ResponseWriter, r *request) {
	app := r.PathValue("app")
	if _, ok := s.gitView().Apps[app]; !ok {
		http.NotFound(w, r.Request)
		return
	}
	refuse := func(msg string) {
		data, _ := s.appData(r, app)
		data["Error"] = msg
		data["UninstallOpen"] = true
		w.WriteHeader(http.StatusUnprocessableEntity)
		s.render(w, r, "app", data)
	}
	if strings.TrimSpace(r.PostFormValue("confirm")) != app {
		refuse(fmt.Sprintf("Not uninstalled: type the app's name, %s, to confirm.", app))
		return
	}
	opts := lifecycle.UninstallOptions{App: app, Timeout: s.opts.DeployTimeout}
	if r.PostFormValue("delete-data") == "true" {
		if strings.TrimSpace(r.PostFormValue("confirm-data")) != app {
			refuse(fmt.Sprintf("Not uninstalled: deleting the data of %s for good needs its name typed a second time, under the choice to delete it; or leave that choice off to keep the data.", app))
			return
		}
		opts.DeleteData = true
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	res, err := s.env.Uninstall(r.asAuthor(), opts)
	if err != nil {
		s.failed(w, r, app, err)
		return
	}
	slog.Info("console: uninstalled", "app", app, "deleteData", opts.DeleteData, "user", r.user.Name)
	_ = s.reload(r.Context())
	msg := []string{"Uninstalled " + strings.Join(res.Apps, ", ") + "."}
	if len(res.KeptClaims) > 0 {
		sort.Strings(res.KeptClaims)
		msg = append(msg, fmt.Sprintf("Kept the volume claims %s: installing %s again adopts them.", strings.Join(res.KeptClaims, ", "), app))
	}
	if len(res.DeletedClaims) > 0 {
		sort.Strings(res.DeletedClaims)
		msg = append(msg, "Deleted the volume claims "+strings.Join(res.DeletedClaims, ", ")+".")
	}
	if len(res.KeptSecrets) > 0 {
		msg = append(msg, fmt.Sprintf("Kept the secrets in %s (encrypted): installing %s again in the same namespace reuses them.", strings.Join(res.KeptSecrets, ", "), app))
	}
	http.Redirect(w, r.Request, "/?done="+url.QueryEscape(strings.Join(msg, " ")), http.StatusSeeOther)
}

// postReveal answers one secret parameter's value, to an admin who asked
// for it: a fragment the page puts in place of the mask, never cached. The
// audit log names who revealed which parameter, never the value.
func (s *Server) postReveal(w http.ResponseWriter, r *request) {
	app, param := r.PathValue("app"), r.PathValue("param")
	pkg, err := s.appPackage(r.Context(), app)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if p, ok := pkg.Param(param); !ok || !p.IsSecret() {
		http.Error(w, fmt.Sprintf("%s is not a secret parameter of %s", param, app), http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	v, err := s.env.SecretValue(r.Context(), app, param)
	var ns *lifecycle.NotSetError
	switch {
	case errors.As(err, &ns):
		fmt.Fprintf(w, `<output class="secret-value sub" id="secret-%s">not set</output>`, template.HTMLEscapeString(param))
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	slog.Info("console: audit: secret revealed", "app", app, "param", param, "user", r.user.Name, "email", r.user.Email, "role", r.user.Role.String())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<output class="secret-value" id="secret-%s">%s</output>`, template.HTMLEscapeString(param), template.HTMLEscapeString(v))
}
