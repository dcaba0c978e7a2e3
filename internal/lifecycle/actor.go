package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/workspace"
)

// Controller is the berth controller that manages the workspace's cluster: a
// Workspace there follows this repository. While one does, it is the one actor
// that applies: commands commit (and push), ask it to reconcile, and follow its
// progress.
type Controller struct {
	client client.Client
	// Workspace is the Workspace object following this repository.
	Workspace *berthv1.Workspace
	// Remote is where commits are pushed for the controller to see them; ""
	// when it reads the repository directly (a file:// URL).
	Remote string
	Branch string
	// push, when set, pushes HEAD where the controller reads it (Follow).
	push func(ctx context.Context) error
}

// Follow names the Workspace a checkout of the controller is for.
type Follow struct {
	Namespace, Name string
	// Push pushes HEAD to the Workspace's branch, with its write credential.
	Push func(ctx context.Context) error
	// Fetch fetches refspecs from the Workspace's repository, with its
	// credential (the upgrade proposals' branches).
	Fetch func(ctx context.Context, refspecs ...string) error
}

// BranchError means the controller follows another branch than the one
// checked out, so a commit here would never reach the cluster.
type BranchError struct {
	Workspace, Followed, Current string
}

func (e *BranchError) Error() string {
	return fmt.Sprintf("the controller's Workspace %s follows branch %q, but %q is checked out: a commit here does not reach the cluster", e.Workspace, e.Followed, e.Current)
}

// Controller returns the controller that manages the workspace's cluster, or
// nil when none does (no Workspace there follows this repository, or the
// cluster has no Workspace API). A *BranchError says it follows another
// branch than the one checked out.
func (e *Env) Controller(ctx context.Context) (*Controller, error) {
	c, err := e.following(ctx)
	if err != nil || c == nil {
		return nil, err
	}
	_, current, err := e.WS.Head(ctx)
	if err != nil {
		return nil, err
	}
	if current != c.Branch {
		ws := c.Workspace
		return nil, &BranchError{Workspace: ws.Namespace + "/" + ws.Name, Followed: c.Branch, Current: current}
	}
	return c, nil
}

// following finds the Workspace in the cluster that follows this
// repository (its file:// top directory, or one of its remotes, with the same
// path), whatever branch is checked out.
func (e *Env) following(ctx context.Context) (*Controller, error) {
	cfg, err := e.clusterConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := berthv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	if f := e.Follow; f != nil {
		var ws berthv1.Workspace
		if err := c.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: f.Name}, &ws); err != nil {
			return nil, fmt.Errorf("reading the controller's Workspace %s/%s: %w", f.Namespace, f.Name, err)
		}
		branch := ws.Spec.Branch
		if branch == "" {
			branch = "main"
		}
		return &Controller{client: c, Workspace: &ws, Branch: branch, push: f.Push}, nil
	}
	var list berthv1.WorkspaceList
	if err := c.List(ctx, &list); err != nil {
		if apimeta.IsNoMatchError(err) || isNotFoundOrForbidden(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("looking for a berth controller in the cluster: %w", err)
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	loc, err := e.WS.Locate(ctx)
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		ws := &list.Items[i]
		if strings.Trim(ws.Spec.Path, "/") != loc.Path || ws.Spec.Cluster != e.FleetCluster {
			continue
		}
		remote, ok := follows(ws.Spec.URL, loc)
		if !ok {
			continue
		}
		branch := ws.Spec.Branch
		if branch == "" {
			branch = "main"
		}
		return &Controller{client: c, Workspace: ws, Remote: remote, Branch: branch}, nil
	}
	return nil, nil
}

func isNotFoundOrForbidden(err error) bool {
	var status interface{ Status() metav1.Status }
	if !errors.As(err, &status) {
		return false
	}
	code := status.Status().Code
	return code == 404 || code == 403
}

// follows reports whether a Workspace's URL is this repository: its top
// directory (file://) or one of its remotes, which is then where to push.
func follows(wsURL string, loc *workspace.Location) (remote string, ok bool) {
	if p, isFile := strings.CutPrefix(wsURL, "file://"); isFile {
		a, err1 := filepath.EvalSymlinks(filepath.Clean(p))
		b, err2 := filepath.EvalSymlinks(loc.Top)
		return "", err1 == nil && err2 == nil && a == b
	}
	want := normalizeGitURL(wsURL)
	for name, u := range loc.Remotes {
		if normalizeGitURL(u) == want {
			return name, true
		}
	}
	return "", false
}

// normalizeGitURL reduces the spellings of one repository's URL to one:
// scheme-less, without credentials, a trailing slash or .git.
func normalizeGitURL(s string) string {
	s = strings.TrimSpace(s)
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		s = strings.ToLower(u.Hostname()) + u.Path
	} else if host, path, ok := strings.Cut(s, ":"); ok && !strings.Contains(host, "/") {
		// scp-like: user@host:path
		if _, h, ok := strings.Cut(host, "@"); ok {
			host = h
		}
		s = strings.ToLower(host) + "/" + strings.TrimPrefix(path, "/")
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git")
	return s
}

// deployViaController pushes HEAD where the controller reads it, asks the
// controller to reconcile, and waits until the apps (all when none is named)
// are applied at HEAD and ready, or one of them fails.
func (e *Env) deployViaController(ctx context.Context, c *Controller, opts DeployOptions) (*DeployResult, error) {
	start := time.Now()
	h, err := e.readHead(ctx)
	if err != nil {
		return nil, err
	}
	ordered, err := h.snap.Order(opts.Apps...)
	if err != nil {
		return nil, err
	}
	if c.push != nil {
		if err := e.step("", "push "+c.Branch+" to the Workspace's repository", func() error { return c.push(ctx) }); err != nil {
			return nil, err
		}
	} else if c.Remote != "" {
		if err := e.step("", fmt.Sprintf("push %s to %s", c.Branch, c.Remote), func() error { return e.WS.Push(ctx, c.Remote, c.Branch) }); err != nil {
			return nil, err
		}
	}
	name := c.Workspace.Namespace + "/" + c.Workspace.Name
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	if err := c.requestReconcile(ctx, stamp); err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	// Each app may take the timeout, and a reconcile already running when the
	// request came finishes first.
	timeout = min(timeout*time.Duration(max(1, len(ordered)))+2*time.Minute, 60*time.Minute)
	msg := fmt.Sprintf("the controller applies revision %s (Workspace %s)", h.revision[:12], name)
	var res *DeployResult
	err = e.step("", msg, func() error {
		var err error
		var gone []string
		for _, r := range opts.Removed {
			gone = append(gone, r.Name)
		}
		// An app the commit leaves as it was keeps the revision it was
		// applied from: it is at rev when its manifests' digest is rev's.
		digests := map[string]string{}
		for _, a := range ordered {
			digests[a.Name] = h.fs.DirDigest(workspace.AppRenderedDirIn(h.cluster, a.Name))
		}
		res, err = c.follow(ctx, h.revision, digests, stamp, ordered, gone, timeout, e.emit)
		return err
	})
	if res != nil {
		res.Duration = time.Since(start)
	}
	return res, err
}

func (c *Controller) requestReconcile(ctx context.Context, stamp string) error {
	ws := c.Workspace.DeepCopy()
	patch := client.MergeFrom(ws.DeepCopy())
	if ws.Annotations == nil {
		ws.Annotations = map[string]string{}
	}
	ws.Annotations[berthv1.AnnotationReconcileRequestedAt] = stamp
	if err := c.client.Patch(ctx, ws, patch); err != nil {
		return fmt.Errorf("asking the controller to reconcile (Workspace %s/%s): %w", ws.Namespace, ws.Name, err)
	}
	return nil
}

// ControllerError is a failure the controller reported.
type ControllerError struct {
	Workspace string
	Reason    string
	Message   string
}

func (e *ControllerError) Error() string {
	return fmt.Sprintf("the controller (Workspace %s) reports %s: %s", e.Workspace, e.Reason, e.Message)
}

// follow polls the Workspace until the handled reconcile request is stamp and
// every app in apps is at rev (applied from it, or holding the manifests
// whose digest rev has) and in a final state (and every removed app is
// gone), reporting what changes.
func (c *Controller) follow(ctx context.Context, rev string, digests map[string]string, stamp string, apps []*workspace.AppEntry, removed []string, timeout time.Duration, emit func(Event)) (*DeployResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	key := client.ObjectKeyFromObject(c.Workspace)
	name := key.String()
	said := map[string]string{}
	// states are the apps' WorkspaceApps as last read.
	var states []berthv1.WorkspaceApp
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var ws berthv1.Workspace
		if err := c.client.Get(ctx, key, &ws); err == nil {
			c.Workspace = &ws
			if ws.Status.LastHandledReconcileAt == stamp {
				if cond := apimeta.FindStatusCondition(ws.Status.Conditions, berthv1.ConditionReady); cond != nil && cond.Status != metav1.ConditionTrue &&
					(cond.Reason == berthv1.ReasonInvalidWorkspace || cond.Reason == berthv1.ReasonGitFetchFailed || cond.Reason == berthv1.ReasonDecryptionFailed) {
					return nil, &ControllerError{Workspace: name, Reason: cond.Reason, Message: cond.Message}
				}
				if ws.Spec.Suspend {
					return nil, &ControllerError{Workspace: name, Reason: berthv1.ReasonSuspended, Message: "the workspace is suspended; 'berth resume' resumes it"}
				}
				var list berthv1.WorkspaceAppList
				if err := c.client.List(ctx, &list, client.InNamespace(key.Namespace), client.MatchingLabels{berthv1.LabelWorkspace: key.Name}); err == nil {
					states = list.Items
					res, done := appResults(&ws, states, rev, digests, apps, removed, said, emit)
					if done {
						return res, res.Err()
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			if ws := c.Workspace; ws.Status.LastHandledReconcileAt == stamp {
				res, _ := appResults(ws, states, rev, digests, apps, removed, said, nil)
				for i := range res.Apps {
					if res.Apps[i].State == "" {
						res.Apps[i].State = deploy.StateProgressing
						res.Apps[i].Err = fmt.Errorf("not applied and ready at %s within %s", rev[:12], timeout)
						res.Apps[i].Error = res.Apps[i].Err.Error()
					}
				}
				return res, res.Err()
			}
			state := "no condition"
			if cond := apimeta.FindStatusCondition(c.Workspace.Status.Conditions, berthv1.ConditionReconciling); cond != nil {
				state = fmt.Sprintf("Reconciling=%s (%s)", cond.Status, cond.Message)
			}
			return nil, fmt.Errorf("the controller did not handle the request to reconcile Workspace %s within %s; it says %s: is it running? ('berth reconcile' shows its state)", name, timeout, state)
		case <-tick.C:
		}
	}
}

// appResults reads each app's state from its WorkspaceApp; done when every
// app is final.
func appResults(ws *berthv1.Workspace, states []berthv1.WorkspaceApp, rev string, digests map[string]string, apps []*workspace.AppEntry, removed []string, said map[string]string, emit func(Event)) (*DeployResult, bool) {
	byName := map[string]*berthv1.AppStatus{}
	for i := range states {
		byName[states[i].Spec.App] = &states[i].Status
	}
	res := &DeployResult{}
	done := true
	for _, a := range apps {
		r := deploy.AppResult{App: a.Name, Namespace: a.Namespace, Actions: map[apply.Action]int{}}
		st := byName[a.Name]
		switch {
		case ws.AppSuspended(a.Name):
			r.State = deploy.StateSuspended
		case st == nil:
		case (st.AppliedRevision == rev || (st.Digest != "" && st.Digest == digests[a.Name])) && apimeta.IsStatusConditionTrue(st.Conditions, berthv1.ConditionReady):
			r.State, r.Objects = deploy.StateReady, st.Inventory.Objects
		case apimeta.IsStatusConditionTrue(st.Conditions, berthv1.ConditionStalled):
			cond := apimeta.FindStatusCondition(st.Conditions, berthv1.ConditionReady)
			r.State, r.Err = deploy.StateFailed, fmt.Errorf("%s: %s", cond.Reason, cond.Message)
		}
		if r.Err != nil {
			r.Error = r.Err.Error()
		}
		if r.State == "" {
			done = false
			if st != nil && emit != nil {
				if cond := apimeta.FindStatusCondition(st.Conditions, berthv1.ConditionReady); cond != nil && cond.Status != metav1.ConditionTrue && said[a.Name] != cond.Message {
					said[a.Name] = cond.Message
					emit(Event{App: a.Name, Message: fmt.Sprintf("%s: %s", a.Name, cond.Message), Note: true})
				}
			}
		}
		res.Apps = append(res.Apps, r)
	}
	for _, name := range removed {
		r := deploy.AppResult{App: name, State: deploy.StateReady}
		if st := byName[name]; st != nil {
			if st.LastError != "" {
				r.State, r.Err, r.Error = deploy.StateError, errors.New(st.LastError), st.LastError
			} else {
				r.State = ""
				done = false
			}
		}
		res.Apps = append(res.Apps, r)
	}
	return res, done
}
