package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/buildinfo"
)

func newVersionCmd(app *App) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print berth's version, commit and Go version",
		Example: `  berth version
  berth version -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Get()
			if out == outputJSON {
				return writeJSON(app.Out, info)
			}
			_, err := fmt.Fprintf(app.Out, "berth %s\ncommit: %s\ngo: %s\nplatform: %s\n", info.Version, info.Commit, info.GoVersion, info.Platform)
			return err
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}
