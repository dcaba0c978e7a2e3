package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/localcluster"
)

func newClusterCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect local clusters",
	}
	cmd.AddCommand(newClusterListCmd(app))
	return cmd
}

func newClusterListCmd(app *App) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List local clusters with their state, version and API server",
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
			if out == outputJSON {
				if clusters == nil {
					clusters = []localcluster.Status{}
				}
				return writeJSON(app.Out, clusters)
			}
			if len(clusters) == 0 {
				fmt.Fprintln(app.Out, "No local clusters. Create one with 'berth up'.")
				return nil
			}
			tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tVERSION\tNODES\tAPI SERVER\tPROMETHEUS")
			for _, c := range clusters {
				if c.Phase == localcluster.PhaseCorrupt {
					fmt.Fprintf(tw, "%s\t%s\t-\t-\t%s\t-\n", c.Name, c.Phase, c.Error)
					continue
				}
				prom := "-"
				if c.Addons[localcluster.PrometheusAddon] {
					prom = c.Prometheus
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", c.Name, c.Phase, c.Kubernetes, c.Nodes, c.APIServer, prom)
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}
