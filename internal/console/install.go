package console

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/workspace"
)

// An install is reviewed before it is committed: the form's first POST runs
// lifecycle.Install as a dry run and shows its plan; the review's Install
// button commits it. The install's options, secret values included, stay in
// the console's memory between the two (never in the page), for a while.
const (
	reviewTTL = 15 * time.Minute
	// maxReviews bounds the reviews kept at once; the oldest goes first.
	maxReviews = 64
)

// pendingInstall is an install someone has reviewed and not yet confirmed.
type pendingInstall struct {
	csrf    string // the session's: a review belongs to one session
	pkg     string
	version string // the version picked on the form; "" follows the channel
	opts    lifecycle.InstallOptions
	posted  map[string]string // the form's values, for Back
	head    string            // HEAD when reviewed
	expires time.Time
}

// reviews holds pending installs by their random id. It is the package's
// rather than a Server's so that the review stays beside its handlers; ids
// are random and bound to a session, so servers in one process do not mix.
var reviews = struct {
	sync.Mutex
	m map[string]*pendingInstall
}{m: map[string]*pendingInstall{}}

func putReview(p *pendingInstall) string {
	reviews.Lock()
	defer reviews.Unlock()
	now := time.Now()
	for id, r := range reviews.m {
		if now.After(r.expires) {
			delete(reviews.m, id)
		}
	}
	for len(reviews.m) >= maxReviews {
		var oldest string
		for id, r := range reviews.m {
			if oldest == "" || r.expires.Before(reviews.m[oldest].expires) {
				oldest = id
			}
		}
		delete(reviews.m, oldest)
	}
	id := randomString(18)
	reviews.m[id] = p
	return id
}

// takeReview removes and returns the review id of the session; nil when
// there is none (expired, used, or another session's).
func takeReview(id, csrf, pkg string) *pendingInstall {
	reviews.Lock()
	defer reviews.Unlock()
	p, ok := reviews.m[id]
	if !ok || p.csrf != csrf || p.pkg != pkg {
		return nil
	}
	delete(reviews.m, id)
	if time.Now().After(p.expires) {
		return nil
	}
	return p
}

// installReview is what the review shows: the dry run's plan.
type installReview struct {
	ID        string
	App       string
	Namespace string
	Package   string
	Follows   string // the channel followed, or the version pinned
	Summary   string
	Message   string // the commit's subject
	Deps      []lifecycle.InstallDependency
	Files     []reviewFile
	Kinds     []kindCount
	// Objects is false for a fleet workspace, whose objects are rendered
	// per cluster and listed as files only.
	Objects bool
	// Moved says the workspace changed since an earlier review of this
	// install, so the plan was made again.
	Moved bool
}

type reviewFile struct {
	Status, Path string
	Secret       bool
}

type kindCount struct {
	App, Kind string
	Names     []string
}

func (s *Server) postInstall(w http.ResponseWriter, r *request) {
	name := r.PathValue("pkg")
	if id := r.PostFormValue("review"); id != "" {
		s.confirmInstall(w, r, name, id)
		return
	}
	version := r.PostFormValue("version")
	data, pkg, err := s.packageData(r, name, version)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	posted := formValues(r.Request, pkg)
	values := map[string]any{}
	for k, v := range posted {
		values[k] = v
	}
	// As 'berth install NAME[@VERSION]': without a chosen version the app
	// follows the workspace's default channel.
	pkgArg := name
	if version != "" {
		pkgArg += "@" + version
	}
	p := &pendingInstall{csrf: r.sess.csrf, pkg: name, version: version, posted: posted,
		opts: lifecycle.InstallOptions{Package: pkgArg, Name: strings.TrimSpace(r.PostFormValue("name")), Namespace: strings.TrimSpace(r.PostFormValue("namespace")), Values: values}}
	s.reviewInstall(w, r, data, p, false)
}

// reviewInstall runs the install as a dry run and shows its plan, or the
// form again with what is wrong.
func (s *Server) reviewInstall(w http.ResponseWriter, r *request, data map[string]any, p *pendingInstall, moved bool) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	head, _, err := s.env.WS.Head(r.Context())
	if err != nil {
		s.installFailed(w, r, data, p, err)
		return
	}
	opts := p.opts
	opts.DryRun = true
	res, err := s.env.Install(r.asAuthor(), opts)
	if err != nil {
		s.installFailed(w, r, data, p, err)
		return
	}
	p.head, p.expires = head, time.Now().Add(reviewTTL)
	rv := reviewOf(res, p, s.env.WS.Config.IsFleet())
	rv.Moved = moved
	rv.ID = putReview(p)
	data["Title"] = "Review the install of " + res.App
	data["Review"] = rv
	s.render(w, r, "install", data)
}

// installFailed shows the package's form again with what is wrong; nothing
// was installed.
func (s *Server) installFailed(w http.ResponseWriter, r *request, data map[string]any, p *pendingInstall, err error) {
	if byParam, general, isConfig := configErrors(err); isConfig {
		data["Fields"] = formFields(data["Package"].(*pkgspec.Package), nil, p.posted, byParam)
		data["FormErrors"] = general
		data["Error"] = "Nothing was installed: fix the fields marked below."
	} else {
		data["Error"] = err.Error()
	}
	data["Name"], data["Namespace"] = p.opts.Name, p.opts.Namespace
	w.WriteHeader(http.StatusUnprocessableEntity)
	s.render(w, r, "package", data)
}

// confirmInstall commits a reviewed install (or, with Back, shows its form
// again). When the workspace moved since the review, the plan may differ: it
// is reviewed again instead.
func (s *Server) confirmInstall(w http.ResponseWriter, r *request, name, id string) {
	p := takeReview(id, r.sess.csrf, name)
	if p == nil {
		data, _, err := s.packageData(r, name, "")
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		data["Error"] = "This review is no longer known (it was used, or is older than 15 minutes, or the console restarted): nothing was installed. Fill in the form again."
		w.WriteHeader(http.StatusConflict)
		s.render(w, r, "package", data)
		return
	}
	data, pkg, err := s.packageData(r, name, p.version)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if r.PostFormValue("back") != "" {
		data["Fields"] = formFields(pkg, nil, p.posted, nil)
		data["Name"], data["Namespace"] = p.opts.Name, p.opts.Namespace
		if hasSecret(pkg.Config, p.posted) {
			data["Flash"] = "Secret values are never sent back to the page: type them again."
		}
		s.render(w, r, "package", data)
		return
	}
	s.writeMu.Lock()
	head, _, err := s.env.WS.Head(r.Context())
	if err != nil {
		s.writeMu.Unlock()
		s.installFailed(w, r, data, p, err)
		return
	}
	if head != p.head {
		s.writeMu.Unlock()
		s.reviewInstall(w, r, data, p, true)
		return
	}
	defer s.writeMu.Unlock()
	res, err := s.env.Install(r.asAuthor(), p.opts)
	if err != nil {
		s.installFailed(w, r, data, p, err)
		return
	}
	if err := s.deploy(r.Context(), res.App); err != nil {
		s.failed(w, r, res.App, fmt.Errorf("installed in the workspace, but the deploy failed: %w", err))
		return
	}
	s.done(w, r, res.App, "Installed "+res.Summary+".")
}

// reviewOf lays a dry run's result out for the review.
func reviewOf(res *lifecycle.InstallResult, p *pendingInstall, fleet bool) *installReview {
	rv := &installReview{App: res.App, Namespace: p.opts.Namespace, Package: p.pkg, Summary: res.Summary,
		Message: "install " + res.Summary, Deps: res.Dependencies, Objects: !fleet}
	if rv.Namespace == "" {
		rv.Namespace = res.App
	}
	rv.Follows = "the workspace's default channel"
	if p.version != "" {
		rv.Follows = "version " + p.version + " (pinned)"
	}
	var shared []string
	for _, d := range res.Dependencies {
		if d.New {
			shared = append(shared, d.Package+" "+d.Version)
		}
	}
	if len(shared) > 0 {
		rv.Message += " with shared " + strings.Join(shared, ", ")
	}
	if res.Preview != nil {
		for _, f := range res.Preview.Files {
			rv.Files = append(rv.Files, reviewFile{Status: fileStatus(f.Status), Path: f.Path, Secret: isSecretFile(f.Path)})
		}
	}
	byKind := map[[2]string][]string{}
	for _, o := range res.Objects {
		k := [2]string{o.App, o.Kind}
		n := o.Name
		if o.Namespace != "" {
			n = o.Namespace + "/" + o.Name
		}
		byKind[k] = append(byKind[k], n)
	}
	for k, names := range byKind {
		slices.Sort(names)
		rv.Kinds = append(rv.Kinds, kindCount{App: k[0], Kind: k[1], Names: names})
	}
	slices.SortFunc(rv.Kinds, func(a, b kindCount) int {
		if a.App != b.App {
			if a.App == res.App {
				return -1
			}
			if b.App == res.App {
				return 1
			}
			return strings.Compare(a.App, b.App)
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	return rv
}

func fileStatus(s string) string {
	switch s {
	case "A":
		return "added"
	case "M":
		return "changed"
	case "D":
		return "deleted"
	}
	return s
}

// isSecretFile says whether rel is one of the paths the workspace keeps
// encrypted (secrets.DefaultSecretPaths).
func isSecretFile(rel string) bool {
	dir, file := path.Split(rel)
	if strings.HasPrefix(rel, workspace.AppsDir+"/") && file == "secrets.yaml" {
		return true
	}
	return slices.Contains(strings.Split(strings.TrimSuffix(dir, "/"), "/"), "secrets")
}

func hasSecret(params []pkgspec.Param, posted map[string]string) bool {
	for _, p := range params {
		if _, ok := posted[p.Name]; ok && p.IsSecret() {
			return true
		}
	}
	return false
}
