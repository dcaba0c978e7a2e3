package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
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
	return []*cobra.Command{network, newPromoteCmd(app)}
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
workspace is refused, naming both; --allow-overlap records it anyway. Its
Kubernetes version and the API versions it serves are read and recorded too
(kubernetes:): charts rendered for the cluster see them in .Capabilities
without contacting it (--offline records none: the defaults are used).

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
			var ke *fleet.KubernetesError
			switch {
			case errors.As(err, &ke):
				return fmt.Errorf("%w; rerun with --offline (and --pod-cidr, --service-cidr) to record it without contacting it", err)
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

// fleetMember returns the cluster named name of the fleet workspace a
// bootstrap points at (a file:// repository, or else the current
// directory's workspace), nil when that workspace has no clusters or cannot
// be read here. A fleet workspace needs the cluster named (explicit).
func fleetMember(repoURL, dir, name string, explicit bool) (*workspace.ClusterEntry, error) {
	root := "."
	if u, err := url.Parse(repoURL); err == nil && u.Scheme == "file" {
		root = filepath.Join(u.Path, dir)
	}
	ws, err := workspace.Open(root)
	if err != nil || !ws.Config.IsFleet() {
		return nil, nil //nolint:nilerr // not a fleet workspace we can read: a plain bootstrap
	}
	c, ok := ws.Config.FleetCluster(name)
	switch {
	case ok && explicit:
		return &c, nil
	case !explicit:
		return nil, fmt.Errorf("the workspace %s has clusters (%s): name the one this is with --cluster", ws.Root, strings.Join(fleet.Names(ws.Config.Clusters), ", "))
	default:
		return nil, fmt.Errorf("the workspace %s has no cluster named %s (it has: %s); add it with 'berth cluster add %s'", ws.Root, name, strings.Join(fleet.Names(ws.Config.Clusters), ", "), name)
	}
}

// runFleetStatus prints berth status for a fleet workspace: app x cluster.
func runFleetStatus(cmd *cobra.Command, app *App, env *lifecycle.Env, apps []string, out output) error {
	opts := fleet.DefaultStatusOptions()
	opts.Apps = apps
	if d, err := cmd.Flags().GetDuration("cluster-timeout"); err == nil && d > 0 {
		opts.Timeout = d
	}
	st, err := fleet.ReadStatus(cmd.Context(), env, opts)
	if err != nil {
		return err
	}
	if out == outputJSON {
		return writeJSON(app.Out, st)
	}
	tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tCLUSTER\tVERSION\tHEALTH\tREVISION")
	for _, c := range st.Clusters {
		if c.Error != "" {
			state := "Unreachable"
			if c.Reachable {
				state = "Error"
			}
			fmt.Fprintf(tw, "-\t%s\t-\t%s: %s\t-\n", c.Cluster, state, c.Error)
			continue
		}
		for _, a := range c.Apps {
			rev := a.Revision
			if len(rev) > 12 {
				rev = rev[:12]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.App, c.Cluster, dash(a.Version), a.Summary(), dash(rev))
		}
	}
	return tw.Flush()
}

func newPromoteCmd(app *App) *cobra.Command {
	var (
		f          wsFlags
		to         string
		approvedBy string
		out        output
	)
	cmd := &cobra.Command{
		Use:   "promote APP --to STAGE",
		Short: "Move an app's version and configuration on to the next stage of environments",
		Long: `Promote what an app runs in the stage before --to into --to (berth.yaml
environments:, in order), as one commit that records what moved, from where,
and the evidence. It is refused, changing nothing, unless every cluster of the
previous stage on which the app is placed runs exactly that source (the
berth.dev/source annotation of its rendered objects) healthy and without drift,
has done so for the stage's soak time, and the stage's verification Job (if
any) completed there. A stage with requireApproval needs --approved-by.

New versions and configurations enter the first stage by 'berth build' (and
install, config, upgrade); later stages change only by promotion.`,
		Example: `  berth promote web --to prod
  berth promote web --to prod --approved-by alice -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := app.env(&f, nil)
			if err != nil {
				return err
			}
			if !env.WS.Config.IsFleet() {
				return fmt.Errorf("%s has no clusters: promotion moves apps between stages of a fleet ('berth cluster add', then environments: in %s)", env.WS.Abs(workspace.ConfigFile), workspace.ConfigFile)
			}
			res, err := fleet.Promote(cmd.Context(), env, fleet.PromoteOptions{App: args[0], To: to, ApprovedBy: approvedBy})
			var re *fleet.RefusedError
			if errors.As(err, &re) && strings.Contains(re.Reason, "requires approval") {
				return fmt.Errorf("%w; rerun with --approved-by NAME", err)
			}
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, res)
			}
			fmt.Fprintf(app.Out, "Promoted %s from %s to %s (%s): source %s\n", res.App, res.From, res.To, strings.Join(res.Clusters, ", "), res.Source)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&to, "to", "", "the stage to promote into")
	cmd.Flags().StringVar(&approvedBy, "approved-by", "", "who approves a promotion into a stage that requires approval")
	_ = cmd.MarkFlagRequired("to")
	addOutputFlag(cmd, &out)
	return cmd
}
