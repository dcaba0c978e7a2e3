package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/controller"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/workspace"
)

// demoApp is an app quickstart installs, with the values it sets.
type demoApp struct {
	pkg    string
	values map[string]any
}

// demoStack is what quickstart installs from the built-in catalog's upstream
// charts: an app with private components (Apache Airflow's official chart with
// berth's PostgreSQL and Redis) and one with a shared dependency that ships
// CRDs and a controller (grafana behind an Ingress whose certificate the
// shared cert-manager issues).
var demoStack = []demoApp{
	{pkg: "airflow"},
	{pkg: "grafana", values: map[string]any{"ingress": true, "domain": "grafana.localhost"}},
}

func demoNames() []string {
	var out []string
	for _, d := range demoStack {
		out = append(out, d.pkg)
	}
	return out
}

func newQuickstartCmd(app *App) *cobra.Command {
	var dir, cluster string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "Start a local cluster, create a workspace and install a demo stack",
		Long: `The whole berth experience in one command, on this machine and without Docker:
start a local Kubernetes cluster ('berth up'), create a workspace (a git
repository) in --dir, install ` + fmt.Sprint(demoNames()) + ` from the built-in catalog
(their upstream charts; their databases and shared dependencies come along),
deploy everything and wait until it is healthy. Running it again is harmless:
what exists is kept and only what is missing is done.

Without internet access, charts come from an offline mirror laid out by
upstream repository URL: set BERTH_CHART_MIRROR to it ('make demo' sets it to
the project's mirror when there is one).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			home, err := app.home()
			if err != nil {
				return err
			}
			if dir == "" {
				userHome, err := os.UserHomeDir()
				if err != nil {
					return err
				}
				dir = filepath.Join(userHome, "berth-quickstart")
			}
			p := newProgress(app.Err)
			defer p.Close()
			c, _, err := localcluster.Up(ctx, localcluster.UpOptions{Home: home, Name: cluster, Progress: p.Event})
			if err != nil {
				return err
			}
			if err := startStandIns(ctx, c); err != nil {
				return err
			}
			if _, err := workspace.Open(dir); errors.Is(err, workspace.ErrNotWorkspace) {
				exe, err := filterExecutable()
				if err != nil {
					return err
				}
				_, _, err = lifecycle.Init(ctx, dir, lifecycle.InitOptions{
					Home: home, Executable: exe,
					Workspace: workspace.InitOptions{Cluster: workspace.ClusterRef{Kubeconfig: c.KubeconfigPath()}},
				})
				if err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			env, err := app.env(&wsFlags{dir: dir}, p)
			if err != nil {
				return err
			}
			if m := os.Getenv(catalog.MirrorEnv); m != "" {
				fmt.Fprintf(app.Err, "charts come from the mirror %s (%s)\n", m, catalog.MirrorEnv)
			}
			for _, d := range demoStack {
				if _, err := env.WS.App(d.pkg); err == nil {
					continue
				}
				res, err := env.Install(ctx, lifecycle.InstallOptions{Package: d.pkg, Values: d.values})
				if err != nil {
					return err
				}
				fmt.Fprintf(app.Err, "✓ installed %s\n", res.Summary)
			}
			if _, err := env.Deploy(ctx, lifecycle.DeployOptions{Timeout: timeout}); err != nil {
				return err
			}
			// From here on the controller keeps the cluster equal to the
			// workspace, as it would in a real cluster: it runs locally because
			// kwok's nodes run no containers.
			webhook, err := startQuickstartController(cmd, c, env.WS.Root, p)
			if err != nil {
				return err
			}
			st, err := env.Status(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "berth is running %d apps on the local cluster %q:\n", len(st), c.Name)
			for _, s := range st {
				fmt.Fprintf(app.Out, "  %-14s %s %s, %s\n", s.App, s.Package, s.Version, s.Summary())
			}
			fmt.Fprintf(app.Out, `
The workspace is %[1]s: every change above is a commit there.
berth's controller runs locally and keeps the cluster equal to its main branch
(log: %[2]s; push webhook %[3]s).
Try next:
  berth status -C %[1]s                          # health of every app
  berth config airflow --set workers=3 -C %[1]s  # change a setting: commit + deploy
  berth history airflow -C %[1]s                 # and 'berth rollback airflow'
  git -C %[1]s log --stat                        # what berth wrote
  berth kubectl -- get pods -A                   # the cluster itself
`, dir, c.AddonLog("controller"), webhook)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "workspace directory (default ~/berth-quickstart)")
	cmd.Flags().StringVar(&cluster, "cluster", localcluster.DefaultUpOptions().Name, "local cluster name")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long each app may take to become healthy")
	return cmd
}

// startQuickstartController installs the Workspace CRD, the workspace's key and a
// Workspace following the local repository, and starts the controller as an
// add-on of the local cluster. It returns the push webhook's URL.
func startQuickstartController(cmd *cobra.Command, c *localcluster.Cluster, root string, p *progress) (string, error) {
	ctx := cmd.Context()
	_, keyPath, err := secrets.RepoKey(ctx, root)
	if err != nil {
		return "", err
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		return "", err
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return "", err
	}
	opts := controller.DefaultBootstrapOptions()
	opts.Local = true
	opts.Workspace.URL = "file://" + root
	opts.Key = key
	var webhook string
	err = p.step("start berth's controller", func() error {
		res, err := controller.Bootstrap(ctx, cfg, opts)
		if err != nil {
			return err
		}
		_, webhook, err = startLocalController(ctx, c, opts.Namespace, res.WebhookSecret)
		return err
	})
	return webhook, err
}
