package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/apply"
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
	set, home, err := a.catalogs()
	if err != nil {
		return nil, err
	}
	env := &lifecycle.Env{WS: ws, Catalogs: set, Cluster: clusterConfig(ws.Config.Cluster), ChartCache: filepath.Join(home, "charts")}
	if p != nil {
		env.Events = p.Lifecycle
	}
	return env, nil
}

// clusterConfig loads the workspace's target cluster lazily: commands that only
// change the workspace work without one.
func clusterConfig(ref workspace.ClusterRef) func() (*rest.Config, error) {
	return func() (*rest.Config, error) {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if ref.Kubeconfig != "" {
			rules.ExplicitPath = ref.Kubeconfig
		}
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: ref.Context}).ClientConfig()
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
	noDeploy bool
	timeout  time.Duration
}

func (d *deployFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&d.noDeploy, "no-deploy", false, "only change the workspace")
	cmd.Flags().DurationVar(&d.timeout, "timeout", 5*time.Minute, "how long each app may take to become healthy")
}

// before fails when the cluster cannot be reached, so that nothing is written
// to the workspace when the deploy after it could not run.
func (d *deployFlags) before(ctx context.Context, env *lifecycle.Env) error {
	if d.noDeploy {
		return nil
	}
	return env.CheckCluster(ctx)
}

// after deploys the named apps (and what they depend on).
func (d *deployFlags) after(ctx context.Context, env *lifecycle.Env, apps []string) (*lifecycle.DeployResult, error) {
	if d.noDeploy {
		return nil, nil
	}
	return env.Deploy(ctx, lifecycle.DeployOptions{Apps: apps, Timeout: d.timeout})
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
			res, err := env.Install(ctx, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Err, "✓ installed %s in the workspace (%s)\n", res.Summary, strings.Join(res.Apps, ", "))
			dep, err := df.after(ctx, env, []string{res.App})
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
			return nil
		},
	}
	f.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func newDeployCmd(app *App) *cobra.Command {
	var f wsFlags
	var timeout time.Duration
	var out output
	cmd := &cobra.Command{
		Use:   "deploy [APP...]",
		Short: "Apply the workspace's apps to the cluster, in dependency order, health-gated",
		Long: `Apply the rendered apps (the named ones and what they depend on; all when none is
named) to the cluster with server-side apply: shared dependencies and components
first, each app phase by phase (CRDs, pre-install hooks such as migrations, its
objects, post-install hooks), each healthy before the next. The first app that
does not become healthy stops the deploy, with what is wrong in it. Objects an
app no longer renders are pruned; unchanged apps cost no writes.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			res, err := env.Deploy(cmd.Context(), lifecycle.DeployOptions{Apps: args, Timeout: timeout})
			if out == outputJSON && res != nil {
				if jerr := writeJSON(app.Out, res); jerr != nil {
					return jerr
				}
			}
			if err != nil {
				return err
			}
			if out != outputJSON {
				for _, d := range res.Apps {
					fmt.Fprintf(app.Out, "%s: healthy (%s) in %s\n", d.App, actions(d.Actions), round(d.Duration))
				}
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long each app may take to become healthy")
	addOutputFlag(cmd, &out)
	return cmd
}

func actions(m map[string]int) string {
	var parts []string
	for _, k := range sortedNames(m) {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
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
suspended app is never shown as plain "Healthy". -o json includes every field.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := app.env(&f, nil)
			if err != nil {
				return err
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
	addOutputFlag(cmd, &out)
	return cmd
}

func newConfigCmd(app *App) *cobra.Command {
	var f wsFlags
	var sets, files []string
	var df deployFlags
	cmd := &cobra.Command{
		Use:   "config APP --set NAME=VALUE...",
		Short: "Change an app's configuration: check, re-render, commit, deploy",
		Example: `  berth config airflow --set workers=4
  berth config airflow --set postgresql.storage=50Gi`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			vals, err := readValues(files, sets)
			if err != nil {
				return err
			}
			if len(vals) == 0 {
				return errors.New("nothing to change: give --set NAME=VALUE or --values FILE")
			}
			if err := df.before(cmd.Context(), env); err != nil {
				return err
			}
			res, err := env.Config(cmd.Context(), args[0], vals)
			if err != nil {
				return err
			}
			if !res.Committed {
				fmt.Fprintf(app.Out, "%s already has that configuration.\n", args[0])
				return nil
			}
			if _, err := df.after(cmd.Context(), env, args); err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "Configured %s: set %s.\n", args[0], strings.Join(res.Set, ", "))
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringArrayVar(&sets, "set", nil, "set a parameter: NAME=VALUE or COMPONENT.NAME=VALUE (repeatable)")
	cmd.Flags().StringArrayVarP(&files, "values", "f", nil, "read parameters from a YAML file")
	df.add(cmd)
	return cmd
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
each moves to the newest version its channel or version constraint allows (or to
--to), with its components and shared dependencies when they must move too. berth
shows what changes, commits, and deploys. Nothing changes when all is up to date.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			opts.Apps = args
			if err := df.before(cmd.Context(), env); err != nil {
				return err
			}
			res, err := env.Upgrade(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if len(res.Changes) > 0 && out != outputJSON {
				// What the new versions change in the cluster, before deploying them.
				plans, err := env.Plan(cmd.Context(), args...)
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
				if _, err := df.after(cmd.Context(), env, args); err != nil {
					return err
				}
			}
			if out == outputJSON {
				return writeJSON(app.Out, res)
			}
			if len(res.Changes) == 0 {
				fmt.Fprintln(app.Out, "Everything is up to date.")
				return nil
			}
			for _, c := range res.Changes {
				fmt.Fprintf(app.Out, "%s: %s -> %s\n", c.Key, orDash(c.From), orDash(c.To))
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&opts.To, "to", "", "exact version for the one app named")
	df.add(cmd)
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
	var to string
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
			res, err := env.Rollback(cmd.Context(), args[0], to)
			if err != nil {
				return err
			}
			if _, err := df.after(cmd.Context(), env, args); err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "Rolled %s back to %.8s (%s).\n", res.App, res.Revision, res.Subject)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&to, "to", "", "revision to restore (default: the app's previous one; see 'berth history APP')")
	df.add(cmd)
	return cmd
}

func newUninstallCmd(app *App) *cobra.Command {
	var f wsFlags
	var opts lifecycle.UninstallOptions
	cmd := &cobra.Command{
		Use:   "uninstall APP",
		Short: "Remove an app from the cluster and the workspace",
		Long: `Delete an app's objects from the cluster and its files from the workspace, with
the shared dependencies nothing else uses any more, and commit. berth refuses
while another app depends on it. Its volume claims (data) are deleted too, unless
--keep-data keeps them and the namespace that holds them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := newProgress(app.Err)
			defer p.Close()
			env, err := app.env(&f, p)
			if err != nil {
				return err
			}
			opts.App = args[0]
			res, err := env.Uninstall(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "Uninstalled %s.\n", strings.Join(res.Apps, ", "))
			if len(res.KeptClaims) > 0 {
				sort.Strings(res.KeptClaims)
				fmt.Fprintf(app.Out, "Kept the volume claims %s.\n", strings.Join(res.KeptClaims, ", "))
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&opts.KeepData, "keep-data", false, "keep the app's volume claims")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "how long deletion may take")
	return cmd
}
