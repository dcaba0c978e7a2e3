package cli

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/apply"
)

// deployCommands returns the commands of berth apply, plan and delete (the deploy engine, internal/apply).
func deployCommands(app *App) []*cobra.Command {
	return []*cobra.Command{newApplyCmd(app), newPlanCmd(app), newDeleteCmd(app)}
}

// clusterFlags select the cluster, the app and its namespace.
type clusterFlags struct {
	kubeconfig string
	context    string
	namespace  string
	app        string
}

func (f *clusterFlags) add(cmd *cobra.Command) {
	f.addOptionalApp(cmd)
	_ = cmd.MarkFlagRequired("app")
}

// addOptionalApp adds the flags with --app optional (plan checks it itself).
func (f *clusterFlags) addOptionalApp(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.app, "app", "", "name of the app: labels its objects berth.dev/app=NAME and names its inventory (required)")
	fl.StringVarP(&f.namespace, "namespace", "n", "", "namespace of objects that have none, and of the app's inventory (default: the kubeconfig context's, else default)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	fl.StringVar(&f.context, "context", "", "kubeconfig context (default: the current context)")
}

// engine returns an engine for the selected cluster and the namespace to use.
func (f *clusterFlags) engine() (*apply.Engine, string, string, error) {
	cfg, ctxNS, err := loadKubeconfig(f.kubeconfig, f.context)
	if err != nil {
		return nil, "", "", fmt.Errorf("loading the kubeconfig: %w (pass --kubeconfig, set KUBECONFIG, or start a local cluster with 'berth up')", err)
	}
	ns := cmp.Or(f.namespace, ctxNS, "default")
	e, err := apply.NewEngine(cfg, apply.DefaultOptions())
	if err != nil {
		return nil, "", "", err
	}
	return e, ns, cfg.Host, nil
}

// explain adds what to do to errors from an unreachable API server, and
// shortens per-object failures that the output already lists.
func explain(err error, host string) error {
	var oe *apply.ObjectsError
	if errors.As(err, &oe) && err == error(oe) {
		return &hintedError{msg: fmt.Sprintf("%d object(s) failed (listed above)", len(oe.Failed)), cause: err}
	}
	var ue *url.Error
	if errors.As(err, &ue) && !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w\ncannot reach the API server at %s: check --kubeconfig and --context, or start a local cluster with 'berth up'", err, host)
	}
	return err
}

func readManifests(cmd *cobra.Command, files []string) ([]*unstructured.Unstructured, error) {
	if len(files) == 0 {
		return nil, errors.New("no manifests: pass -f FILE or -f DIR (repeatable), or -f - for standard input")
	}
	return apply.ReadManifests(cmd.InOrStdin(), files...)
}

func newApplyCmd(app *App) *cobra.Command {
	var cf clusterFlags
	var files []string
	var out output
	opts := apply.DefaultApplyOptions()
	cmd := &cobra.Command{
		Use:   "apply --app NAME -f FILE|DIR ...",
		Short: "Apply Kubernetes manifests as an app, with server-side apply, pruning and health checks",
		Long: `Apply plain Kubernetes manifests to the cluster as the app NAME, like 'kapp deploy'.

berth applies with server-side apply (field manager "berth") in stages: custom
resource definitions first (and waits until they are established, so custom
resources in the same set work on the first run), then namespaces, cluster roles
and *Class objects, then everything else, and webhook configurations last. Every
object is labelled berth.dev/app=NAME; objects without a namespace get --namespace.

What was applied is recorded in an inventory (the Secret berth-inventory-NAME in
--namespace). An unchanged set is recognised from it without any write or dry run,
yet objects deleted or changed by someone else since (kubectl edit, kubectl scale)
are re-applied. With --prune, objects that the manifests no longer hold are deleted,
except PersistentVolumeClaims (annotate them berth.dev/prune=allow to allow it) and
namespaces holding objects that are not the app's.

One invalid object does not stop the others: everything valid is applied, the
failures are listed with the API server's message, and the exit code is 1.
A field another tool owns is reported as a conflict naming the field and the tool;
--force-conflicts takes it over.`,
		Example: `  berth apply --app web -n web -f manifests/
  berth apply --app web -f app.yaml --prune --wait --timeout 2m
  berth apply --app web -f manifests/ --dry-run
  kustomize build overlay | berth apply --app web -f - -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := readManifests(cmd, files)
			if err != nil {
				return err
			}
			e, ns, host, err := cf.engine()
			if err != nil {
				return err
			}
			opts.App, opts.Namespace = cf.app, ns
			p := newDeployProgress(app.Err)
			opts.Events = p.event
			res, err := e.Apply(cmd.Context(), objs, opts)
			p.close()
			if res != nil {
				if out == outputJSON {
					if jerr := writeJSON(app.Out, res); jerr != nil {
						return jerr
					}
				} else if opts.DryRun {
					printPlan(app.Out, res)
				} else {
					printResult(app.Out, res, "Applied")
				}
			}
			return explain(err, host)
		},
	}
	cf.add(cmd)
	f := cmd.Flags()
	f.StringArrayVarP(&files, "filename", "f", nil, "manifest file or directory (*.yaml, *.yml, *.json, recursively); - for standard input; repeatable")
	f.BoolVar(&opts.Prune, "prune", false, "delete the app's objects that the manifests no longer hold")
	f.BoolVar(&opts.Wait, "wait", false, "wait until every object is healthy")
	f.DurationVar(&opts.Timeout, "timeout", opts.Timeout, "how long --wait waits, and how long CRDs may take to be established")
	f.BoolVar(&opts.DryRun, "dry-run", false, "print what would change, as 'berth plan' does, and change nothing")
	f.BoolVar(&opts.ForceConflicts, "force-conflicts", false, "take over fields that other tools own")
	addOutputFlag(cmd, &out)
	return cmd
}

func newPlanCmd(app *App) *cobra.Command {
	var cf clusterFlags
	var wf wsFlags
	var files []string
	var exitCode bool
	var out output
	opts := apply.DefaultPlanOptions()
	cmd := &cobra.Command{
		Use:   "plan [APP...] | plan --app NAME -f FILE|DIR ...",
		Short: "Show what a deploy would change in the cluster, as a diff",
		Long: `Show, for every object, whether a deploy would create, update, delete or leave
it unchanged, and for updates a unified YAML diff of the fields berth manages (from
a server-side dry run, made only for the objects that change). Fields that the API
server or admission webhooks default, and status, are not shown as changes. Secret
values are masked. Nothing in the cluster changes.

Without -f it plans the workspace's apps (the named ones and what they depend on;
all when none is named), as 'berth deploy' would apply them, pruning included.
With -f it plans plain manifests as 'berth apply --app NAME' would.

With --exit-code the exit status says whether anything would change: 0 when
nothing would, 2 when something would be created, updated or deleted, and 1 on
error (like 'terraform plan -detailed-exitcode').`,
		Example: `  berth plan
  berth plan airflow -o json
  berth plan --app web -n web -f manifests/
  berth plan --app web -f manifests/ --prune -o json
  berth plan --exit-code >/dev/null || [ $? -eq 2 ] && echo "the cluster differs"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(files) == 0 {
				if cf.app != "" {
					return errors.New("--app plans plain manifests: give them with -f; without -f, name workspace apps as arguments")
				}
				return planWorkspace(cmd, app, &wf, args, out, exitCode)
			}
			if len(args) > 0 {
				return fmt.Errorf("with -f, plan takes no app arguments (got %s); name the app with --app", strings.Join(args, " "))
			}
			if cf.app == "" {
				return errors.New("--app is required with -f: it names the app whose inventory the plan compares with")
			}
			objs, err := readManifests(cmd, files)
			if err != nil {
				return err
			}
			e, ns, host, err := cf.engine()
			if err != nil {
				return err
			}
			opts.App, opts.Namespace = cf.app, ns
			res, err := e.Plan(cmd.Context(), objs, opts)
			if res != nil {
				if out == outputJSON {
					if jerr := writeJSON(app.Out, res); jerr != nil {
						return jerr
					}
				} else {
					printPlan(app.Out, res)
				}
			}
			if err != nil {
				return explain(err, host)
			}
			return planExit(exitCode, res)
		},
	}
	cf.addOptionalApp(cmd)
	wf.add(cmd)
	f := cmd.Flags()
	f.StringArrayVarP(&files, "filename", "f", nil, "manifest file or directory; - for standard input; repeatable")
	f.BoolVar(&opts.Prune, "prune", false, "with -f: plan the deletion of the app's objects that the manifests no longer hold")
	f.BoolVar(&opts.ForceConflicts, "force-conflicts", false, "with -f: plan as if taking over fields that other tools own")
	f.BoolVar(&exitCode, "exit-code", false, "exit 2 when there are changes, 0 when there are none (1 on error)")
	addOutputFlag(cmd, &out)
	return cmd
}

// planWorkspace prints the plan of the workspace's apps.
func planWorkspace(cmd *cobra.Command, app *App, wf *wsFlags, names []string, out output, exitCode bool) error {
	env, err := app.env(wf, nil)
	if err != nil {
		return err
	}
	results, err := env.Plan(cmd.Context(), names...)
	if err != nil {
		return err
	}
	if out == outputJSON {
		if results == nil {
			results = []*apply.Result{}
		}
		if err := writeJSON(app.Out, results); err != nil {
			return err
		}
		return planExit(exitCode, results...)
	}
	for _, r := range results {
		printPlan(app.Out, r)
	}
	return planExit(exitCode, results...)
}

func newDeleteCmd(app *App) *cobra.Command {
	var cf clusterFlags
	var out output
	opts := apply.DefaultDeleteOptions()
	cmd := &cobra.Command{
		Use:   "delete --app NAME",
		Short: "Delete every object berth applied as an app",
		Long: `Delete the objects recorded in the app's inventory that still carry its label
berth.dev/app=NAME, in reverse stage order (webhook configurations first, namespaces
and CRDs last), then the inventory. PersistentVolumeClaims are kept unless annotated
berth.dev/prune=allow, and so are namespaces holding objects that are not the app's.`,
		Example: `  berth delete --app web -n web
  berth delete --app web -n web --wait --timeout 2m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, ns, host, err := cf.engine()
			if err != nil {
				return err
			}
			opts.App, opts.Namespace = cf.app, ns
			res, err := e.Delete(cmd.Context(), opts)
			if res != nil {
				if out == outputJSON {
					if jerr := writeJSON(app.Out, res); jerr != nil {
						return jerr
					}
				} else {
					printResult(app.Out, res, "Deleted")
				}
			}
			return explain(err, host)
		},
	}
	cf.add(cmd)
	f := cmd.Flags()
	f.BoolVar(&opts.Wait, "wait", false, "wait until the deleted objects are gone")
	f.DurationVar(&opts.Timeout, "timeout", opts.Timeout, "how long --wait waits")
	f.BoolVar(&opts.DryRun, "dry-run", false, "print what would be deleted and delete nothing")
	addOutputFlag(cmd, &out)
	return cmd
}

var pastTense = map[apply.Action]string{
	apply.ActionCreate: "created", apply.ActionUpdate: "updated", apply.ActionDelete: "deleted",
	apply.ActionKeep: "kept", apply.ActionFail: "failed", apply.ActionUnchanged: "unchanged", apply.ActionSkip: "skipped",
}

// printResult lists what changed (not the unchanged objects) and a summary.
func printResult(w io.Writer, res *apply.Result, verb string) {
	for _, c := range res.Changes {
		if c.Action == apply.ActionUnchanged {
			continue
		}
		line := fmt.Sprintf("%-9s %s", pastTense[c.Action], c.Object)
		switch {
		case c.Error != "":
			// The error names the object.
			line = fmt.Sprintf("%-9s %s", pastTense[c.Action], c.Error)
		case c.Reason == apply.ReasonNotPruned:
			line += ": " + c.Reason + " (apply with --prune to delete it)"
		case c.Reason != "":
			line += ": " + c.Reason
		}
		if c.Health != "" && c.Action != apply.ActionFail {
			line += " [" + c.Health + "]"
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "%s app %s (namespace %s) in %s: %s\n", verb, res.App, res.Namespace, round(res.Duration), summary(res))
}

func summary(res *apply.Result) string {
	var parts []string
	for _, a := range []apply.Action{apply.ActionCreate, apply.ActionUpdate, apply.ActionUnchanged, apply.ActionDelete, apply.ActionKeep, apply.ActionSkip, apply.ActionFail} {
		if n := res.Count(a); n > 0 || a == apply.ActionFail {
			parts = append(parts, fmt.Sprintf("%d %s", n, pastTense[a]))
		}
	}
	return strings.Join(parts, ", ")
}

var planMark = map[apply.Action]string{
	apply.ActionCreate: "+", apply.ActionUpdate: "~", apply.ActionDelete: "-", apply.ActionKeep: "=", apply.ActionFail: "!", apply.ActionSkip: "_",
}

// printPlan shows each change with its diff, indented.
func printPlan(w io.Writer, res *apply.Result) {
	for _, c := range res.Changes {
		if c.Action == apply.ActionUnchanged {
			continue
		}
		line := fmt.Sprintf("%s %s %s", planMark[c.Action], c.Action, c.Object)
		switch {
		case c.Error != "":
			line = fmt.Sprintf("%s %s %s", planMark[c.Action], c.Action, c.Error)
		case c.Reason != "":
			line += ": " + c.Reason
		}
		fmt.Fprintln(w, line)
		for _, l := range strings.SplitAfter(strings.TrimRight(c.Diff, "\n"), "\n") {
			if l != "" {
				fmt.Fprintf(w, "    %s", strings.TrimRight(l, "\n")+"\n")
			}
		}
	}
	fmt.Fprintf(w, "Plan for app %s (namespace %s): %d to create, %d to update, %d to delete, %d unchanged", res.App, res.Namespace,
		res.Count(apply.ActionCreate), res.Count(apply.ActionUpdate), res.Count(apply.ActionDelete), res.Count(apply.ActionUnchanged))
	if n := res.Count(apply.ActionKeep); n > 0 {
		fmt.Fprintf(w, ", %d kept", n)
	}
	if n := res.Count(apply.ActionFail); n > 0 {
		fmt.Fprintf(w, ", %d failing", n)
	}
	fmt.Fprintln(w, ".")
}

// deployProgress prints the live steps of an apply: stages, and while waiting,
// each object's state when it changes, with a reminder of what is still
// awaited every few seconds so that a long wait never looks like a hang.
type deployProgress struct {
	w     io.Writer
	mu    sync.Mutex
	start time.Time
	wait  map[string]string // object -> state, of objects not ready yet
	done  chan struct{}
}

func newDeployProgress(w io.Writer) *deployProgress {
	p := &deployProgress{w: w, start: time.Now(), wait: map[string]string{}, done: make(chan struct{})}
	go p.tick()
	return p
}

func (p *deployProgress) event(ev apply.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Type {
	case apply.EventStage:
		fmt.Fprintf(p.w, "• applying %s\n", ev.Message)
	case apply.EventProgress:
		fmt.Fprintf(p.w, "• %s\n", ev.Message)
	case apply.EventFailed:
		fmt.Fprintf(p.w, "✗ %s\n", ev.Message)
	case apply.EventWaiting:
		p.wait[ev.Object.String()] = ev.Message
		fmt.Fprintf(p.w, "  waiting for %s: %s (%s)\n", ev.Object, ev.Message, round(ev.Elapsed))
	case apply.EventReady:
		delete(p.wait, ev.Object.String())
		msg := ""
		if ev.Message != "" {
			msg = ": " + ev.Message
		}
		fmt.Fprintf(p.w, "✓ %s ready%s (%s)\n", ev.Object, msg, round(ev.Elapsed))
	}
}

func (p *deployProgress) tick() {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.mu.Lock()
			if len(p.wait) > 0 {
				fmt.Fprintf(p.w, "  still waiting for %d object(s) (%s)\n", len(p.wait), round(time.Since(p.start)))
			}
			p.mu.Unlock()
		}
	}
}

func (p *deployProgress) close() { close(p.done) }
