package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/workspace"
)

func newUpCmd(app *App) *cobra.Command {
	opts := localcluster.DefaultUpOptions()
	defaults := localcluster.DefaultVersions()
	versions := defaults
	var out output
	var monitoring bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a local Kubernetes cluster (no Docker needed)",
		Long: `Start a local Kubernetes cluster whose control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler) runs as plain processes on this machine,
with simulated nodes played by kwok: pods are scheduled and reported Running, so
Deployments and StatefulSets become Available, but no container runs.

On first use the binaries are built from the Go module proxy (a few minutes) and
cached under $XDG_CACHE_HOME/berth/localcluster; --binaries uses prebuilt ones.
State (certificates, etcd data, logs, kubeconfig) lives in ~/.berth/clusters/NAME
($BERTH_HOME/clusters/NAME when BERTH_HOME is set).

Running it again is harmless: a running cluster is reported, a stopped one is
restarted with its data. Several named clusters can run side by side.

--monitoring also runs Prometheus and Alertmanager as local processes (built
once from the Go module proxy into $XDG_CACHE_HOME/berth/monitoring): Prometheus
scrapes the API server, the controllers and berth's local controller, and loads
the alert rules of the PrometheusRule objects in the cluster; Alertmanager sends
alerts to berth's local controller (/hooks/alertmanager). See docs/monitoring.md.`,
		Example: `  berth up
  berth up --name staging --nodes 5
  berth up --binaries ./bin --kubernetes-version v1.34.4
  berth up --monitoring`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := app.home()
			if err != nil {
				return err
			}
			opts.Home = home
			if cmd.Flags().Changed("kubernetes-version") || cmd.Flags().Changed("etcd-version") || cmd.Flags().Changed("kwok-version") {
				opts.Versions = versions
			}
			p := newProgress(app.Err)
			opts.Progress = p.Event
			c, res, err := localcluster.Up(cmd.Context(), opts)
			p.Close()
			if err != nil {
				return err
			}
			if err := startStandIns(cmd.Context(), c); err != nil {
				return err
			}
			if monitoring {
				if err := startMonitoring(cmd.Context(), app, c); err != nil {
					return err
				}
			}
			st := c.Status()
			if out == outputJSON {
				var mon *workspace.MonitoringConfig
				if monitoring {
					mon = localMonitoringConfig(st)
				}
				return writeJSON(app.Out, struct {
					localcluster.Status
					Created        bool `json:"created"`
					AlreadyRunning bool `json:"alreadyRunning"`
					// Monitoring is berth.yaml's monitoring: for this cluster.
					Monitoring *workspace.MonitoringConfig `json:"monitoring,omitempty"`
				}{st, res.Created, res.AlreadyRunning, mon})
			}
			verb := "is up"
			switch {
			case res.AlreadyRunning:
				verb = "was already running"
			case !res.Created:
				verb = "is up again (restarted with its data)"
			}
			fmt.Fprintf(app.Out, "Cluster %q %s: kubernetes %s, %d nodes, API server %s\n", c.Name, verb, st.Kubernetes, st.Nodes, st.APIServer)
			if monitoring {
				fmt.Fprintf(app.Out, "Monitoring: Prometheus %s, Alertmanager %s\n", st.Prometheus, st.Alertmanager)
				fmt.Fprintf(app.Out, "For a workspace of this cluster, in its berth.yaml:\n\n%s\n", monitoringConfigYAML(st))
			}
			fmt.Fprintf(app.Out, "Kubeconfig: %s\n\n  export KUBECONFIG=%s\n  kubectl get nodes\n", c.KubeconfigPath(), c.KubeconfigPath())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Name, "name", opts.Name, "cluster name")
	f.IntVar(&opts.Nodes, "nodes", 0, "number of simulated nodes (default 3 for a new cluster; changes an existing one's count)")
	f.StringVar(&opts.BinDir, "binaries", "", "directory with prebuilt "+fmt.Sprint(localcluster.RequiredBinaries)+" instead of building them")
	f.StringVar(&versions.Kubernetes, "kubernetes-version", defaults.Kubernetes, "Kubernetes version of a new cluster")
	f.StringVar(&versions.Etcd, "etcd-version", defaults.Etcd, "etcd version of a new cluster")
	f.StringVar(&versions.Kwok, "kwok-version", defaults.Kwok, "kwok version of a new cluster")
	f.IntVar(&opts.APIServerPort, "api-server-port", 0, "API server port of a new cluster on 127.0.0.1 (default: a free port)")
	f.BoolVar(&monitoring, "monitoring", false, "also run Prometheus and Alertmanager as local processes")
	addOutputFlag(cmd, &out)
	return cmd
}

// startMonitoring starts the cluster's Prometheus and Alertmanager, and the
// add-on that turns the cluster's PrometheusRule objects into the local
// Prometheus's rule files.
func startMonitoring(ctx context.Context, app *App, c *localcluster.Cluster) error {
	p := newProgress(app.Err)
	_, err := c.StartMonitoring(ctx, localcluster.MonitoringOptions{Progress: p.Event})
	p.Close()
	if err != nil {
		return err
	}
	exe, err := berthExecutable()
	if err != nil {
		return err
	}
	return c.StartRuleSync(ctx, exe)
}

func newRuleSyncCmd(app *App) *cobra.Command {
	var kf kubeFlags
	var dir string
	cmd := &cobra.Command{
		Use:    "local-cluster-rules",
		Short:  "Write the cluster's PrometheusRule objects as the local Prometheus's rule files (berth up --monitoring starts it)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := kf.config()
			if err != nil {
				return err
			}
			return localcluster.RunRuleSync(cmd.Context(), cfg, dir, 2*time.Second, app.Err)
		},
	}
	kf.add(cmd)
	cmd.Flags().StringVar(&dir, "cluster-dir", "", "state directory of the local cluster")
	return cmd
}

func newDownCmd(app *App) *cobra.Command {
	opts := localcluster.DownOptions{Name: localcluster.DefaultUpOptions().Name}
	var all bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop a local cluster, and with --purge remove its state",
		Long: `Stop the processes of a local cluster started by 'berth up', by the process ids
it recorded, in reverse order (etcd last), each with a grace period before it is
killed. The cluster's data stays, so 'berth up' restarts it as it was; --purge
removes the state directory too. --all stops every local cluster.`,
		Example: `  berth down
  berth down --name staging --purge
  berth down --all --purge`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := app.home()
			if err != nil {
				return err
			}
			opts.Home = home
			results := map[string]localcluster.DownResult{}
			if all {
				results, err = localcluster.DownAll(cmd.Context(), home, opts.Purge)
			} else {
				var res localcluster.DownResult
				res, err = localcluster.Down(cmd.Context(), opts)
				results[opts.Name] = res
			}
			for _, name := range sortedNames(results) {
				res := results[name]
				if len(res.Stopped) == 0 {
					fmt.Fprintf(app.Out, "Cluster %q was not running.", name)
				} else {
					fmt.Fprintf(app.Out, "Cluster %q stopped (%d processes).", name, len(res.Stopped))
				}
				if res.Purged {
					fmt.Fprint(app.Out, " Its state was removed.")
				}
				fmt.Fprintln(app.Out)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", opts.Name, "cluster name")
	cmd.Flags().BoolVar(&opts.Purge, "purge", false, "also remove the cluster's state (certificates, etcd data, logs)")
	cmd.Flags().BoolVar(&all, "all", false, "stop every local cluster")
	cmd.MarkFlagsMutuallyExclusive("name", "all")
	return cmd
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// startStandIns starts the local cluster's stand-ins for the controllers of
// custom resources it cannot run (see localcluster.RunStandIns).
func startStandIns(ctx context.Context, c *localcluster.Cluster) error {
	exe, err := berthExecutable()
	if err != nil {
		return err
	}
	return c.StartStandIns(ctx, exe)
}

func newStandInsCmd(app *App) *cobra.Command {
	var kf kubeFlags
	opts := localcluster.DefaultStandInOptions()
	cmd := &cobra.Command{
		Use:    "local-cluster-stand-ins",
		Short:  "Play the controllers of custom resources a local cluster cannot run (berth up starts it)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := kf.config()
			if err != nil {
				return err
			}
			opts.Log = app.Err
			return localcluster.RunStandIns(cmd.Context(), cfg, opts)
		},
	}
	kf.add(cmd)
	cmd.Flags().StringVar(&opts.EgressSocket, "egress-socket", "", "serve the API server's egress to the cluster network on this Unix socket")
	return cmd
}

// localMonitoringConfig is berth.yaml's monitoring: section for a local
// cluster's Prometheus and Alertmanager.
func localMonitoringConfig(st localcluster.Status) *workspace.MonitoringConfig {
	return &workspace.MonitoringConfig{
		Prometheus:   &workspace.MonitoringEndpoint{URL: st.Prometheus},
		Alertmanager: &workspace.MonitoringEndpoint{URL: st.Alertmanager},
	}
}

// monitoringConfigYAML is localMonitoringConfig as berth.yaml holds it.
func monitoringConfigYAML(st localcluster.Status) string {
	data, err := yaml.Marshal(map[string]any{"monitoring": localMonitoringConfig(st)})
	if err != nil {
		return err.Error() // plain strings: cannot happen
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n") {
		b.WriteString("  " + line)
	}
	return b.String() + "\n"
}
