package cli

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/workspace"
)

func newClusterCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Local clusters, and the clusters of a fleet workspace",
	}
	cmd.AddCommand(newClusterListCmd(app), newClusterAddCmd(app), newClusterRemoveCmd(app))
	return cmd
}

// clusterListing is what 'berth cluster list -o json' prints inside a
// workspace with clusters: the workspace's and the local ones.
type clusterListing struct {
	Workspace []workspace.ClusterEntry `json:"workspace"`
	Local     []localcluster.Status    `json:"local"`
}

func newClusterListCmd(app *App) *cobra.Command {
	var (
		out output
		f   wsFlags
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List local clusters, and the workspace's clusters when it has any",
		Long: `List the local clusters of berth's home ('berth up') with their state,
version, API server and network ranges. Inside a workspace that has clusters
(berth.yaml clusters:), list those first, with their labels and ranges.`,
		Example: `  berth cluster list
  berth cluster list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := app.home()
			if err != nil {
				return err
			}
			clusters, err := localcluster.List(home)
			if err != nil {
				return err
			}
			var fleetClusters []workspace.ClusterEntry
			ws, err := workspace.Open(f.dir)
			switch {
			case err == nil:
				fleetClusters = ws.Config.Clusters
			case !errors.Is(err, workspace.ErrNotWorkspace):
				return err
			}
			if clusters == nil {
				clusters = []localcluster.Status{}
			}
			if out == outputJSON {
				if fleetClusters == nil {
					return writeJSON(app.Out, clusters)
				}
				return writeJSON(app.Out, clusterListing{Workspace: fleetClusters, Local: clusters})
			}
			tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
			if len(fleetClusters) > 0 {
				fmt.Fprintln(tw, "WORKSPACE CLUSTER\tLABELS\tPODS\tSERVICES\tCONTEXT")
				for _, c := range fleetClusters {
					var labels []string
					for _, k := range slices.Sorted(keysOf(c.Labels)) {
						labels = append(labels, k+"="+c.Labels[k])
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, dash(strings.Join(labels, ",")),
						dash(strings.Join(c.Network.Pods, ",")), dash(strings.Join(c.Network.Services, ",")), dash(c.Context))
				}
				fmt.Fprintln(tw)
			}
			if len(clusters) == 0 {
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintln(app.Out, "No local clusters. Create one with 'berth up'.")
				return nil
			}
			fmt.Fprintln(tw, "NAME\tSTATE\tVERSION\tNODES\tAPI SERVER\tPODS\tSERVICES\tPROMETHEUS")
			for _, c := range clusters {
				if c.Phase == localcluster.PhaseCorrupt {
					fmt.Fprintf(tw, "%s\t%s\t-\t-\t%s\t-\t-\t-\n", c.Name, c.Phase, c.Error)
					continue
				}
				pods, svc := "-", "-"
				if c.Network != nil {
					pods, svc = c.Network.PodCIDR, c.Network.ServiceCIDR
				}
				prom := "-"
				if c.Addons[localcluster.PrometheusAddon] {
					prom = c.Prometheus
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", c.Name, c.Phase, c.Kubernetes, c.Nodes, c.APIServer, pods, svc, prom)
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &out)
	f.add(cmd)
	return cmd
}

func keysOf(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
