package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/fleet"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/netplan"
	"berth.dev/berth/internal/workspace"
)

// fleetCommands are the commands of fleet workspaces that are not under
// 'berth cluster': network plans and promotion.
func fleetCommands(app *App) []*cobra.Command {
	network := &cobra.Command{Use: "network", Short: "Plan network ranges for clusters"}
	network.AddCommand(newNetworkPlanCmd(app))
	return []*cobra.Command{network}
}

func newClusterAddCmd(app *App) *cobra.Command {
	var (
		f            wsFlags
		kubeconfig   string
		kubeContext  string
		labels       []string
		podCIDRs     []string
		serviceCIDRs []string
		allowOverlap bool
		offline      bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a cluster to the workspace's fleet (berth.yaml clusters:)",
		Long: `Record a cluster in the workspace's berth.yaml, as a commit: where to reach
it (--kubeconfig, --context), its labels (for placement and environments) and
its pod and service ranges. The ranges are read from the cluster (its nodes'
pod ranges, its ServiceCIDR objects) unless given with --pod-cidr and
--service-cidr. A cluster whose ranges overlap another cluster's of the
workspace is refused, naming both; --allow-overlap records it anyway.

Once a workspace has clusters, every app is rendered per cluster under
rendered/CLUSTER/APP/ (see 'placement:' in app.yaml).`,
		Example: `  berth cluster add prod-eu --kubeconfig ~/.kube/prod --context eu --label env=prod --label region=eu
  berth cluster add dev --kubeconfig ~/.berth/clusters/dev/kubeconfig --label env=dev
  berth cluster add edge --pod-cidr 10.50.0.0/16 --service-cidr 10.51.0.0/20 --offline`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := workspace.Open(f.dir)
			if err != nil {
				return err
			}
			entry := workspace.ClusterEntry{Name: args[0], Kubeconfig: kubeconfig, Context: kubeContext, Labels: map[string]string{}}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label %q: want KEY=VALUE, like region=eu", l)
				}
				entry.Labels[k] = v
			}
			if len(entry.Labels) == 0 {
				entry.Labels = nil
			}
			for _, r := range []struct {
				flag string
				in   []string
				out  *[]string
			}{{"--pod-cidr", podCIDRs, &entry.Network.Pods}, {"--service-cidr", serviceCIDRs, &entry.Network.Services}} {
				ps, err := netplan.ParsePrefixes(r.flag, r.in)
				if err != nil {
					return err
				}
				for _, p := range ps {
					*r.out = append(*r.out, p.String())
				}
			}
			opts := fleet.AddOptions{Cluster: entry, AllowOverlap: allowOverlap}
			if !offline {
				if opts.Config, err = fleet.RESTConfig(entry); err != nil {
					return fmt.Errorf("%w; pass --kubeconfig and --context, or --offline with --pod-cidr and --service-cidr", err)
				}
			}
			added, err := fleet.Add(cmd.Context(), ws, opts)
			var oe *fleet.OverlapError
			switch {
			case errors.As(err, &oe):
				return fmt.Errorf("%w; choose other ranges, or rerun with --allow-overlap if the clusters never route to each other", err)
			case err != nil && offline:
				return err
			case err != nil:
				return fmt.Errorf("%w (give the ranges with --pod-cidr and --service-cidr)", err)
			}
			fmt.Fprintf(app.Out, "Added cluster %s: pods %s, services %s\n", added.Name, strings.Join(added.Network.Pods, ","), strings.Join(added.Network.Services, ","))
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "the cluster's kubeconfig (recorded as given; KUBECONFIG's resolution when empty)")
	cmd.Flags().StringVar(&kubeContext, "context", "", "the kubeconfig context (its current context when empty)")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "a label KEY=VALUE (repeatable), like env=prod or region=eu")
	cmd.Flags().StringSliceVar(&podCIDRs, "pod-cidr", nil, "the cluster's pod ranges (read from its nodes when not given)")
	cmd.Flags().StringSliceVar(&serviceCIDRs, "service-cidr", nil, "the cluster's service ranges (read from its ServiceCIDRs when not given)")
	cmd.Flags().BoolVar(&allowOverlap, "allow-overlap", false, "record the cluster even if its ranges overlap another cluster's")
	cmd.Flags().BoolVar(&offline, "offline", false, "do not contact the cluster: take the ranges given")
	return cmd
}

func newClusterRemoveCmd(app *App) *cobra.Command {
	var f wsFlags
	cmd := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Remove a cluster from the workspace's fleet, with its rendered/NAME/",
		Long: `Remove a cluster from berth.yaml and its rendered/NAME/ directory, as one
commit. The cluster itself is left as it is: its controller, if it runs one,
prunes what it applied once rendered/NAME/ is gone from the branch it follows.`,
		Example: `  berth cluster remove prod-us`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := workspace.Open(f.dir)
			if err != nil {
				return err
			}
			if err := fleet.Remove(cmd.Context(), ws, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "Removed cluster %s from the workspace\n", args[0])
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func newNetworkPlanCmd(app *App) *cobra.Command {
	var (
		supernet string
		n        int
		out      output
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print pod and service ranges for N clusters that do not overlap",
		Long: `Split --supernet into --clusters equal slices and print, for each, a pod
range (the first half of its slice) and a service range (the quarter after it,
at most a /12, which is all kube-apiserver accepts). No two ranges overlap.`,
		Example: `  berth network plan --supernet 10.0.0.0/8 --clusters 3
  berth network plan --supernet 172.16.0.0/12 --clusters 20 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			super, err := netip.ParsePrefix(supernet)
			if err != nil {
				return fmt.Errorf("--supernet %q is not a CIDR range (like 10.0.0.0/8)", supernet)
			}
			plan, err := netplan.Plan(super, n)
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, plan)
			}
			tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLUSTER\tPODS\tSERVICES")
			for _, a := range plan {
				fmt.Fprintf(tw, "%d\t%s\t%s\n", a.Index+1, a.Pods, a.Services)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&supernet, "supernet", "10.0.0.0/8", "the range to split")
	cmd.Flags().IntVar(&n, "clusters", 1, "how many clusters")
	addOutputFlag(cmd, &out)
	return cmd
}

// fleetClusterOf returns the client configuration of a cluster of ws's
// fleet by name.
func fleetClusterOf(ws *workspace.Workspace) func(string) (*rest.Config, error) {
	return func(name string) (*rest.Config, error) {
		c, ok := ws.Config.FleetCluster(name)
		if !ok {
			return nil, fmt.Errorf("the workspace has no cluster named %s", name)
		}
		cfg, err := fleet.RESTConfig(c)
		if err != nil {
			return nil, err
		}
		cfg.Timeout = 30 * time.Second
		return cfg, nil
	}
}

// printRefusals says which clusters an app was not rendered for.
func printRefusals(app *App, refused []lifecycle.Refusal) {
	for _, r := range refused {
		fmt.Fprintf(app.Err, "warning: app %s was not rendered for cluster %s: %s; that cluster keeps what it had\n", r.App, r.Cluster, r.Reason)
	}
}
