package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/fleet"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/wizard"
	"berth.dev/berth/internal/workspace"
)

// workspaceCommands returns the commands of the app lifecycle over a workspace.
func workspaceCommands(app *App) []*cobra.Command {
	return []*cobra.Command{
		newInitCmd(app),
		newInstallCmd(app),
		newBuildCmd(app),
		newDeployCmd(app),
		newStatusCmd(app),
		newConfigCmd(app),
		newUpgradeCmd(app),
		newHistoryCmd(app),
		newRollbackCmd(app),
		newUninstallCmd(app),
		newQuickstartCmd(app),
	}
}

// wsFlags are the flags every workspace command has.
type wsFlags struct {
	dir string
}

func (f *wsFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.dir, "workspace", "C", ".", "the workspace directory (or any directory inside it)")
}

// env opens the workspace and what it uses: the catalogs and the target cluster.
func (a *App) env(f *wsFlags, p *progress) (*lifecycle.Env, error) {
	ws, err := workspace.Open(f.dir)
	if err != nil {
		return nil, err
	}
	set, home, err := a.catalogsFor(ws)
	if err != nil {
		return nil, err
	}
	env := &lifecycle.Env{WS: ws, Catalogs: set, Cluster: clusterConfig(ws.Config.Cluster), ChartCache: filepath.Join(home, "charts"),
		ClusterOf: fleetClusterOf(ws)}
	if p != nil {
		env.Events = p.Lifecycle
	}
	return env, nil
}

// clusterConfig loads the workspace's target cluster lazily: commands that only
// change the workspace work without one.
func clusterConfig(ref workspace.ClusterRef) func() (*rest.Config, error) {
	return func() (*rest.Config, error) {
		cfg, _, err := loadKubeconfig(ref.Kubeconfig, ref.Context)
		if err != nil {
			return nil, fmt.Errorf("the workspace's cluster: %w; set cluster.kubeconfig and cluster.context in berth.yaml, or KUBECONFIG", err)
		}
		cfg.Timeout = 30 * time.Second
		// Deprecation warnings of types berth only reads while scanning (v1
		// Endpoints) are noise to a user.
		cfg.WarningHandler = rest.NoWarnings{}
		return cfg, nil
	}
}

// deployFlags are the flags of commands that change the workspace and then
// deploy what changed.
type deployFlags struct {
	noDeploy       bool
	atomic         bool
	timeout        time.Duration
	forceConflicts bool
}

func (d *deployFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&d.noDeploy, "no-deploy", false, "only change the workspace")
	d.addDeploy(cmd)
}

// addDeploy adds the flags of a deploy.
func (d *deployFlags) addDeploy(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&d.timeout, "timeout", 5*time.Minute, "how long each phase of an app may take to become healthy")
	cmd.Flags().BoolVar(&d.forceConflicts, "force-conflicts", false, "take fields that another field manager (kubectl, another controller) owns")
}

func (d *deployFlags) options(apps []string) lifecycle.DeployOptions {
	return lifecycle.DeployOptions{Apps: apps, Timeout: d.timeout, ForceConflicts: d.forceConflicts}
}

// before fails when the cluster cannot be reached, so that nothing is written
// to the workspace when the deploy after it could not run.
func (d *deployFlags) before(ctx context.Context, env *lifecycle.Env) error {
	if d.noDeploy {
		return nil
	}
	if env.WS.Config.IsFleet() {
		// The fleet's preflight asks every cluster the change renders for,
		// and names the one that cannot be reached.
		env.Preflight = true
		return nil
	}
	if err := env.CheckCluster(ctx); err != nil {
		var ue *lifecycle.UnreachableError
		if errors.As(err, &ue) {
			return fmt.Errorf("%w ('berth up' starts a local cluster); or change only the workspace with --no-deploy", err)
		}
		return err
	}
	env.Preflight = true // what the cluster would refuse is never committed
	return nil
}

// after deploys the named apps (and what they depend on).
func (d *deployFlags) after(ctx context.Context, env *lifecycle.Env, apps []string) (*lifecycle.DeployResult, error) {
	if d.noDeploy {
		return nil, nil
	}
	res, err := env.Deploy(ctx, d.options(apps))
	return res, explainDeploy(err)
}

// addAtomic adds --atomic to a command that commits a change and deploys it.
func (d *deployFlags) addAtomic(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&d.atomic, "atomic", false, "when the deploy fails, revert the commit (a new commit) and deploy the previous state")
}

// change is a commit a command made, for undoing it when its deploy fails.
type change struct {
	app    string
	before string // HEAD before the command
	// installed is the app the change added (an install), removed from the
	// cluster when the change is reverted.
	installed *workspace.App
}

// begin records HEAD before a command changes the workspace.
func (d *deployFlags) begin(ctx context.Context, env *lifecycle.Env, app string) change {
	head, _ := env.Head(ctx)
	return change{app: app, before: head}
}

// afterChange deploys what a committed change touched. When that fails, it
// reverts the commit with --atomic, and otherwise says how to undo it in one step.
func (d *deployFlags) afterChange(ctx context.Context, app *App, env *lifecycle.Env, c change, apps []string) (*lifecycle.DeployResult, error) {
	dep, err := d.after(ctx, env, apps)
	if err == nil {
		return dep, nil
	}
	head, herr := env.Head(ctx)
	if herr != nil || head == c.before {
		return dep, err
	}
	if !d.atomic {
		undo := fmt.Sprintf("'git revert %.8s' then 'berth deploy'", head)
		switch {
		case c.installed != nil:
			undo = fmt.Sprintf("'berth uninstall %s'", c.app)
		case c.app != "" && !strings.Contains(c.app, " "):
			undo = fmt.Sprintf("'berth rollback %s' (then it is deployed)", c.app)
		}
		return dep, fmt.Errorf("%w\nThe change is committed as %.8s and the cluster is part-way. Undo it in one step with %s, or fix the cause and run 'berth deploy %s'; 'git revert %.8s' then 'berth deploy' also undoes it; --atomic does it for you", err, head, undo, strings.TrimSpace(c.app), head)
	}
	rev, rerr := env.Revert(ctx, head)
	if rerr != nil {
		return dep, fmt.Errorf("%w\n--atomic could not revert %.8s: %v", err, head, rerr)
	}
	fmt.Fprintf(app.Err, "• deploy failed: reverted %.8s with %.8s (--atomic)\n", head, rev)
	if c.installed != nil {
		if _, derr := env.RemoveFromCluster(context.WithoutCancel(ctx), c.installed, lifecycle.UninstallOptions{App: c.app, Timeout: d.timeout}); derr != nil {
			return dep, fmt.Errorf("%w\n--atomic reverted the install (%.8s) but could not delete what was applied: %v; run 'berth uninstall' after reinstalling, or delete namespace %s's objects labelled %s", err, rev, derr, c.installed.Namespace, c.app)
		}
		return dep, fmt.Errorf("%w\n--atomic reverted the install (commit %.8s) and deleted what was applied (volume claims are kept)", err, rev)
	}
	if _, derr := env.Deploy(context.WithoutCancel(ctx), d.options(apps)); derr != nil {
		return dep, fmt.Errorf("%w\n--atomic reverted the change (commit %.8s), but deploying the previous state failed too: %v", err, rev, derr)
	}
	return dep, fmt.Errorf("%w\n--atomic reverted the change (commit %.8s) and deployed the previous state again", err, rev)
}

// readValues reads --values files and --set pairs into one map (--set wins).
func readValues(files, sets []string) (map[string]any, error) {
	out := map[string]any{}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--values: %w", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("--values %s: %v; the file must be a YAML map of parameter names to values", file, err)
		}
		for k, v := range m {
			out[k] = v
		}
	}
	for _, kv := range sets {
		if err := setValue(out, kv); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func newInitCmd(app *App) *cobra.Command {
	var kubeconfig, kubeContext, channel string
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Create a berth workspace: a git repository that holds what you install",
		Long: `Create a workspace in DIR (default: the current directory), or adopt the git
repository already there: berth.yaml, the layout berth writes to, and encryption
of secret files (git-crypt compatible; the key is kept in ~/.berth/keys, outside
the repository). Everything berth does to the workspace afterwards is a commit.`,
		Example: `  berth init infra
  berth init --kubeconfig ~/.kube/prod --context prod`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			home, err := app.home()
			if err != nil {
				return err
			}
			exe, err := filterExecutable()
			if err != nil {
				return err
			}
			ws, res, err := lifecycle.Init(cmd.Context(), dir, lifecycle.InitOptions{
				Home: home, Executable: exe,
				Workspace: workspace.InitOptions{Channel: channel, Cluster: workspace.ClusterRef{Kubeconfig: kubeconfig, Context: kubeContext}},
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "Workspace ready in %s (key %s kept in %s).\nNext: berth install PACKAGE -C %s   (berth search lists packages)\n", ws.Root, res.KeyID, res.KeyPath, ws.Root)
			return nil
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to deploy to (default: KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&kubeContext, "context", "", "kubeconfig context (default: its current context)")
	cmd.Flags().StringVar(&channel, "channel", "stable", "channel new apps follow: stable, warm or latest")
	return cmd
}

func newInstallCmd(app *App) *cobra.Command {
	var f wsFlags
	var opts lifecycle.InstallOptions
	var sets, files []string
	var yes, accessible, askAll bool
	var df deployFlags
	var out output
	cmd := &cobra.Command{
		Use:   "install PACKAGE[@VERSION|@CHANNEL|@CONSTRAINT]",
		Short: "Install an app: resolve, configure, render into the workspace, commit, deploy",
		Long: `Install a package as an app of the workspace. berth resolves it together with
everything installed (private components such as its own database, and shared
dependencies such as cert-manager, which become apps of their own), asks in the
terminal for the configuration it must have, renders the Kubernetes objects into
rendered/APP/, commits, and deploys in dependency order until everything is
healthy.

Without a terminal, or with --yes, berth never asks: a required value that is
missing is an error that lists every one. Secret values go only to the encrypted
apps/APP/secrets.yaml.`,
		Example: `  berth install airflow
  berth install postgresql@latest --name db --set storage=50Gi
  berth install airflow --yes --set executor=LocalExecutor --set postgresql.storage=20Gi`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			if opts.Values, err = readValues(files, sets); err != nil {
				return err
			}
			opts.Package = args[0]
			if err := df.before(ctx, env); err != nil {
				return err
			}
			if !yes && isTerminal(os.Stdin) && isTerminal(app.Err) {
				opts.Ask = func(ctx context.Context, pkg *pkgspec.Package, given map[string]any) (map[string]any, error) {
					return wizard.Ask(ctx, pkg, given, wizard.Options{In: os.Stdin, Out: app.Err, Accessible: accessible, All: askAll})
				}
			}
			c := df.begin(ctx, env, opts.Name)
			res, err := env.Install(ctx, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Err, "✓ installed %s in the workspace (%s)\n", res.Summary, strings.Join(res.Apps, ", "))
			c.app = res.App
			if c.installed, err = env.WS.App(res.App); err != nil {
				return err
			}
			dep, err := df.afterChange(ctx, app, env, c, []string{res.App})
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, struct {
					*lifecycle.InstallResult
					Deploy *lifecycle.DeployResult `json:"deploy,omitempty"`
				}{res, dep})
			}
			if df.noDeploy {
				fmt.Fprintf(app.Out, "Installed %s; deploy it with 'berth deploy %s'.\n", res.Summary, res.App)
			} else {
				fmt.Fprintf(app.Out, "Installed and deployed %s; 'berth status %s' shows its health.\n", res.Summary, res.App)
			}
			if res.Notes != "" {
				fmt.Fprintf(app.Out, "\n%s\n", res.Notes)
			}
			return nil
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&opts.Name, "name", "", "app name (default: the package name)")
	fl.StringVarP(&opts.Namespace, "namespace", "n", "", "namespace (default: the app name)")
	fl.StringVar(&opts.Channel, "channel", "", "channel to follow (default: the workspace's)")
	fl.StringArrayVar(&sets, "set", nil, "set a parameter: NAME=VALUE or COMPONENT.NAME=VALUE (repeatable)")
	fl.StringArrayVarP(&files, "values", "f", nil, "read parameters from a YAML file (repeatable; --set wins)")
	fl.BoolVarP(&yes, "yes", "y", false, "never ask; use defaults and what is set")
	fl.BoolVar(&askAll, "ask-all", false, "ask every parameter, not only the required ones")
	fl.BoolVar(&accessible, "accessible", false, "ask line by line (screen readers, simple terminals)")
	df.add(cmd)
	df.addAtomic(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func newBuildCmd(app *App) *cobra.Command {
	var f wsFlags
	var out output
	cmd := &cobra.Command{
		Use:   "build [APP...]",
		Short: "Re-render apps into the workspace and update the lock",
		Long: `Render the named apps (all when none is named) again from their package
versions in berth.lock and their configuration, and commit what changed. An
unchanged workspace gives the same bytes and no commit.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			res, err := env.Build(cmd.Context(), args...)
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, res)
			}
			if res.Committed {
				fmt.Fprintf(app.Out, "Built %s and committed the changes.\n", strings.Join(res.Apps, ", "))
			} else {
				fmt.Fprintf(app.Out, "Built %s: nothing changed.\n", strings.Join(res.Apps, ", "))
			}
			printRefusals(app, res.Refused)
			return nil
		},
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func newDeployCmd(app *App) *cobra.Command {
	var f wsFlags
	var df deployFlags
	var out output
	cmd := &cobra.Command{
		Use:   "deploy [APP...]",
		Short: "Bring the cluster to the workspace's HEAD commit, in dependency order, health-gated",
		Long: `Deploy the apps of the workspace's HEAD commit (the named ones and what they
depend on; all when none is named); uncommitted changes are never deployed.

When a berth controller manages the cluster (a Workspace there follows this
repository), it is the one actor: deploy pushes the branch when the Workspace
reads a remote, asks the controller to reconcile, and follows its progress until
the apps are applied at HEAD and healthy. Otherwise deploy applies them itself
through the same deploy library: shared dependencies and components first, each
app phase by phase (namespace, CRDs, pre-install hooks such as migrations, its
objects, post-install hooks), each phase healthy before the next. An app that
does not become healthy holds back the apps that depend on it, with what is
wrong in it. Objects an app no longer renders are pruned; unchanged apps cost no
writes.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			res, err := env.Deploy(cmd.Context(), df.options(args))
			if out == outputJSON && res != nil {
				if jerr := writeJSON(app.Out, res); jerr != nil {
					return jerr
				}
			}
			if out != outputJSON && res != nil {
				printDeploy(app.Out, res)
			}
			return explainDeploy(err)
		},
	}
	f.add(cmd)
	df.addDeploy(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

// printDeploy prints one line per app of a deploy.
func printDeploy(w io.Writer, res *lifecycle.DeployResult) {
	for _, d := range res.Apps {
		switch d.State {
		case deploy.StateReady:
			fmt.Fprintf(w, "%s: healthy (%s) in %s\n", d.App, actions(d.Actions), round(d.Duration))
		case deploy.StateSuspended:
			fmt.Fprintf(w, "%s: suspended, left alone\n", d.App)
		default:
			fmt.Fprintf(w, "%s: %s: %s\n", d.App, strings.ToLower(string(d.State)), d.Error)
		}
	}
}

// explainDeploy adds what to do to a deploy's error.
func explainDeploy(err error) error {
	var ae *deploy.AppError
	if errors.As(err, &ae) {
		var oe *apply.ObjectsError
		if errors.As(err, &oe) {
			for _, c := range oe.Failed {
				if len(c.Conflicts) > 0 {
					return fmt.Errorf("%w\nanother field manager owns some of these fields: rerun with --force-conflicts to take them, or list them in the object's %s annotation", err, deploy.AnnotationIgnoreFields)
				}
			}
		}
		return fmt.Errorf("%w\n'berth status %s' shows what is wrong; fix it and deploy again, or 'berth rollback %s'", err, ae.App, ae.App)
	}
	return err
}

func actions(m map[apply.Action]int) string {
	var parts []string
	for _, a := range []apply.Action{apply.ActionCreate, apply.ActionUpdate, apply.ActionDelete, apply.ActionUnchanged, apply.ActionKeep, apply.ActionSkip, apply.ActionFail} {
		if m[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[a], a))
		}
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, ", ")
}

func newStatusCmd(app *App) *cobra.Command {
	var f wsFlags
	var out output
	cmd := &cobra.Command{
		Use:   "status [APP...]",
		Short: "Show each app's version, health, drift, suspension, revision and upgrades",
		Long: `Show each installed app: its package and locked version; the health of its
objects in the cluster, and why an object is not healthy; drift (objects that
differ from the workspace's rendered objects, found by a plan that changes
nothing); whether the controller managing this workspace has suspended it; the
workspace revision last applied to it; and the newest version its channel or
version constraint allows, when that is newer than the lock. A drifted or
suspended app is never shown as plain "Healthy". -o json includes every field.

In a workspace with clusters (berth.yaml clusters:) it shows the fleet: each
app on each cluster it is placed on, reading every cluster at once, each within
--cluster-timeout; a cluster that does not answer is shown as unreachable and
the others are still shown.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := app.env(&f, nil)
			if err != nil {
				return err
			}
			if env.WS.Config.IsFleet() {
				return runFleetStatus(cmd, app, env, args, out)
			}
			st, err := env.Status(cmd.Context(), args...)
			if err != nil {
				return err
			}
			if out == outputJSON {
				if st == nil {
					st = []lifecycle.AppStatus{}
				}
				return writeJSON(app.Out, st)
			}
			if len(st) == 0 {
				fmt.Fprintln(app.Out, "No apps installed. 'berth install PACKAGE' adds one.")
				return nil
			}
			return printStatus(app.Out, st)
		},
	}
	f.add(cmd)
	cmd.Flags().Duration("cluster-timeout", fleet.DefaultStatusOptions().Timeout, "in a workspace with clusters: how long each cluster may take to answer")
	addOutputFlag(cmd, &out)
	return cmd
}

func newConfigCmd(app *App) *cobra.Command {
	var f wsFlags
	var sets, files []string
	var opts lifecycle.ConfigOptions
	var df deployFlags
	var out output
	cmd := &cobra.Command{
		Use:   "config APP [--set NAME=VALUE...] [--channel NAME]",
		Short: "Change an app's configuration or channel: check, re-render, commit, deploy",
		Long: `Change an app's configuration (merged over what it has) or the channel it
follows, check it against the package, re-render, commit and deploy.

--channel switches to another channel of the package: the app moves to that
channel's version, never below the installed one (it then stays until the
channel catches up), and never across a breaking boundary without
--allow-breaking. --dry-run shows the version changes and the diff of the
rendered files without committing (secret files are only named).`,
		Example: `  berth config airflow --set workers=4
  berth config airflow --set postgresql.storage=50Gi --dry-run
  berth config cache --channel warm`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			if opts.Values, err = readValues(files, sets); err != nil {
				return err
			}
			if len(opts.Values) == 0 && opts.Channel == "" {
				return errors.New("nothing to change: give --set NAME=VALUE, --values FILE or --channel NAME")
			}
			opts.App = args[0]
			if !opts.DryRun {
				if err := df.before(ctx, env); err != nil {
					return err
				}
			}
			c := df.begin(ctx, env, opts.App)
			res, err := env.Config(ctx, opts)
			if err != nil {
				return withBreakingHint(err)
			}
			if opts.DryRun {
				if out == outputJSON {
					return writeJSON(app.Out, res)
				}
				printChanges(app.Out, res.Changes)
				printRenames(app.Out, res.Renamed)
				printPreview(app.Out, res.Preview)
				return nil
			}
			if !res.Committed {
				// Deploy even so: an earlier run may have committed and
				// died before its deploy; an unchanged cluster costs no write.
				if _, err := df.after(ctx, env, args); err != nil {
					return err
				}
				if out == outputJSON {
					return writeJSON(app.Out, res)
				}
				fmt.Fprintf(app.Out, "%s already has that configuration.\n", args[0])
				return nil
			}
			if _, err := df.afterChange(ctx, app, env, c, args); err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, res)
			}
			printChanges(app.Out, res.Changes)
			printRenames(app.Out, res.Renamed)
			if len(res.Set) > 0 {
				fmt.Fprintf(app.Out, "Configured %s: set %s.\n", args[0], strings.Join(res.Set, ", "))
			}
			if res.Channel != "" {
				fmt.Fprintf(app.Out, "%s follows channel %s.\n", args[0], res.Channel)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringArrayVar(&sets, "set", nil, "set a parameter: NAME=VALUE or COMPONENT.NAME=VALUE (repeatable)")
	cmd.Flags().StringArrayVarP(&files, "values", "f", nil, "read parameters from a YAML file")
	cmd.Flags().StringVar(&opts.Channel, "channel", "", "follow another channel of the package (stable, warm, latest...)")
	cmd.Flags().BoolVar(&opts.AllowBreaking, "allow-breaking", false, "allow a version change across a breaking boundary (see the package's upgrade note)")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "show what would change, commit nothing")
	df.add(cmd)
	df.addAtomic(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

// withBreakingHint adds the flag that lets a refused breaking change through.
func withBreakingHint(err error) error {
	var be *lifecycle.BreakingError
	if errors.As(err, &be) {
		return fmt.Errorf("%w; when the data is taken care of, rerun with --allow-breaking", err)
	}
	return err
}

func printChanges(w io.Writer, changes []lifecycle.VersionChange) {
	for _, c := range changes {
		fmt.Fprintf(w, "%s: %s -> %s\n", c.Key, orDash(c.From), orDash(c.To))
	}
}

// printRenames says which settings an upgrade carried over to a
// parameter's new name.
func printRenames(w io.Writer, renamed []lifecycle.Rename) {
	for _, r := range renamed {
		fmt.Fprintf(w, "carried over %s\n", r)
	}
}

func printPreview(w io.Writer, pv *lifecycle.Preview) {
	if pv == nil || len(pv.Files) == 0 {
		fmt.Fprintln(w, "Dry run: nothing would change.")
		return
	}
	fmt.Fprintln(w, "Dry run: would commit")
	for _, f := range pv.Files {
		fmt.Fprintf(w, "  %s %s\n", f.Status, f.Path)
	}
	if pv.Diff != "" {
		fmt.Fprint(w, pv.Diff)
	}
}

func newUpgradeCmd(app *App) *cobra.Command {
	var f wsFlags
	var opts lifecycle.UpgradeOptions
	var df deployFlags
	var out output
	cmd := &cobra.Command{
		Use:   "upgrade [APP...]",
		Short: "Move apps to the newest versions their channel or constraint allows",
		Long: `Resolve the named apps (all when none is named) afresh against the catalogs:
each moves to the newest version its channel or version constraint allows, with
its components and shared dependencies when they must move too. berth shows
what changes, commits, and deploys. Nothing changes when all is up to date.

A plain upgrade never moves an app below its installed version: an app above
its channel stays until the channel catches up. --to VERSION moves one app to
that exact version and pins it there (version "=VERSION" in its app.yaml) until
'berth upgrade APP --unpin'. A new major version, or a version its package
marks breaking, is refused with the package's upgrade note (what must happen to
the data) unless --allow-breaking. A setting whose parameter a new version
renames is carried over to the new name, and berth says so. --dry-run shows the version changes and the
diff of the rendered files without committing.`,
		Example: `  berth upgrade
  berth upgrade cache --to 7.4.2
  berth upgrade cache --unpin
  berth upgrade db --dry-run`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			opts.Apps = args
			if !opts.DryRun {
				if err := df.before(ctx, env); err != nil {
					return err
				}
			}
			c := df.begin(ctx, env, strings.Join(args, " "))
			res, err := env.Upgrade(ctx, opts)
			if err != nil {
				return withBreakingHint(err)
			}
			if opts.DryRun {
				if out == outputJSON {
					return writeJSON(app.Out, res)
				}
				printChanges(app.Out, res.Changes)
				printRenames(app.Out, res.Renamed)
				printPreview(app.Out, res.Preview)
				return nil
			}
			if len(res.Changes) > 0 && out != outputJSON && !df.noDeploy {
				// What the new versions change in the cluster, before deploying them.
				plans, err := env.Plan(ctx, args...)
				if err != nil {
					return err
				}
				for _, r := range plans {
					if r.Count(apply.ActionUnchanged) < len(r.Changes) {
						printPlan(app.Out, r)
					}
				}
			}
			if len(res.Changes) > 0 {
				if _, err := df.afterChange(ctx, app, env, c, args); err != nil {
					return err
				}
			} else if _, err := df.after(ctx, env, args); err != nil {
				// Deploy even when nothing changed: an earlier run may have
				// committed and died before its deploy; an unchanged
				// cluster costs no write.
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, res)
			}
			if res.Pinned != "" {
				fmt.Fprintf(app.Out, "%s is pinned at %s; 'berth upgrade %s --unpin' follows its channel again.\n", res.Pinned, opts.To, res.Pinned)
			}
			if res.Unpinned != "" {
				fmt.Fprintf(app.Out, "%s follows its channel again.\n", res.Unpinned)
			}
			if len(res.Changes) == 0 {
				fmt.Fprintln(app.Out, "Everything is up to date.")
				return nil
			}
			printChanges(app.Out, res.Changes)
			printRenames(app.Out, res.Renamed)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&opts.To, "to", "", "exact version for the one app named; pins it there")
	cmd.Flags().BoolVar(&opts.Unpin, "unpin", false, "remove the one app's pin: follow its channel again (never below the installed version)")
	cmd.Flags().BoolVar(&opts.AllowBreaking, "allow-breaking", false, "allow versions across a breaking boundary (see the package's upgrade note)")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "show what would change, commit nothing")
	df.add(cmd)
	df.addAtomic(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newHistoryCmd(app *App) *cobra.Command {
	var f wsFlags
	var out output
	cmd := &cobra.Command{
		Use:   "history APP",
		Short: "List the commits that changed an app",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := app.env(&f, nil)
			if err != nil {
				return err
			}
			revs, err := env.History(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if out == outputJSON {
				if revs == nil {
					revs = []workspace.Revision{}
				}
				return writeJSON(app.Out, revs)
			}
			tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tDATE\tCHANGE")
			for _, r := range revs {
				fmt.Fprintf(tw, "%.8s\t%s\t%s\n", r.Hash, r.Time.Format("2006-01-02 15:04"), r.Subject)
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func newRollbackCmd(app *App) *cobra.Command {
	var f wsFlags
	var opts lifecycle.RollbackOptions
	var df deployFlags
	cmd := &cobra.Command{
		Use:   "rollback APP [--to REVISION]",
		Short: "Restore an app as it was at an earlier revision, as a new commit, and deploy it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			if err := df.before(cmd.Context(), env); err != nil {
				return err
			}
			opts.App = args[0]
			res, err := env.Rollback(cmd.Context(), opts)
			if err != nil {
				return withBreakingHint(err)
			}
			if _, err := df.after(cmd.Context(), env, args); err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "Rolled %s back to %.8s (%s).\n", res.App, res.Revision, res.Subject)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&opts.To, "to", "", "revision to restore (default: the app's previous one; see 'berth history APP')")
	cmd.Flags().BoolVar(&opts.AllowBreaking, "allow-breaking", false, "allow going back across a breaking version boundary (see the package's upgrade note)")
	df.add(cmd)
	return cmd
}

func newUninstallCmd(app *App) *cobra.Command {
	var f wsFlags
	var opts lifecycle.UninstallOptions
	var yes, keepData bool
	var out output
	cmd := &cobra.Command{
		Use:   "uninstall APP",
		Short: "Remove an app from the cluster and the workspace; its data is kept",
		Long: `Delete an app's objects from the cluster and its files from the workspace, with
the shared dependencies nothing else uses any more, and commit. berth refuses
while another app depends on it.

Data is kept: the app's volume claims stay in the cluster (and with them the
namespace that holds them), relabelled berth.dev/kept-from=APP, and the app's
secrets (the seed its generated passwords derive from, and its secret values)
stay encrypted in the workspace under apps/.retained/secrets/NAMESPACE/APP.yaml.
Installing an app of the same name in the same namespace again finds its data
with the same credentials.

A namespace berth made for the app that holds objects berth did not make for
it (yours, or the app's own at run time) is kept the same way, and named.

--delete-data deletes the claims and the kept secrets too. It asks first on a
terminal; scripts confirm with --yes, and without a terminal berth refuses
unless --yes is given.`,
		Example: `  berth uninstall grafana
  berth uninstall db --delete-data --yes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.App = args[0]
			if opts.DeleteData && keepData {
				return errors.New("--delete-data and --keep-data contradict each other; give one")
			}
			if opts.DeleteData && !yes {
				// Not isTerminal: /dev/null is a character device too.
				if !term.IsTerminal(int(os.Stdin.Fd())) {
					return fmt.Errorf("--delete-data deletes the volume claims of %s and the credentials kept for them, for good; no terminal to confirm on, so rerun with --yes to confirm", opts.App)
				}
				ok, err := confirm(os.Stdin, app.Err, fmt.Sprintf("Delete the data (volume claims) of %s and its kept credentials for good? Type %q to confirm: ", opts.App, opts.App), opts.App)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("not confirmed: nothing was deleted (uninstall without --delete-data keeps the data)")
				}
			}
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			res, err := env.Uninstall(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, res)
			}
			fmt.Fprintf(app.Out, "Uninstalled %s.\n", strings.Join(res.Apps, ", "))
			if len(res.KeptClaims) > 0 {
				sort.Strings(res.KeptClaims)
				fmt.Fprintf(app.Out, "Kept the volume claims %s: installing %s again adopts them; delete them with 'kubectl delete pvc -l %s=%s'.\n", strings.Join(res.KeptClaims, ", "), opts.App, lifecycle.LabelKeptFrom, opts.App)
			}
			if len(res.DeletedClaims) > 0 {
				sort.Strings(res.DeletedClaims)
				fmt.Fprintf(app.Out, "Deleted the volume claims %s.\n", strings.Join(res.DeletedClaims, ", "))
			}
			if len(res.KeptSecrets) > 0 {
				fmt.Fprintf(app.Out, "Kept the secrets in %s (encrypted): installing %s again in the same namespace reuses them.\n", strings.Join(res.KeptSecrets, ", "), opts.App)
			}
			for _, ns := range res.KeptNamespaces {
				fmt.Fprintf(app.Out, "Kept the namespace %s of %s: it holds %s, which berth did not make for %s and does not delete; it is labelled %s=%s ('kubectl delete namespace %s' deletes it with all it holds).\n",
					ns.Name, ns.App, strings.Join(ns.Holds, ", "), ns.App, lifecycle.LabelKeptFrom, ns.App, ns.Name)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&opts.DeleteData, "delete-data", false, "also delete the app's volume claims (its data) and its kept secrets")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "confirm --delete-data without asking")
	cmd.Flags().BoolVar(&keepData, "keep-data", false, "keep the app's volume claims (the default)")
	_ = cmd.Flags().MarkDeprecated("keep-data", "data is kept by default; --delete-data deletes it")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "how long deletion may take")
	addOutputFlag(cmd, &out)
	return cmd
}

// confirm asks question on w and reads one line from r: true when it is want.
func confirm(r io.Reader, w io.Writer, question, want string) (bool, error) {
	fmt.Fprint(w, question)
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return strings.TrimSpace(line) == want, nil
}
