package cli

import "github.com/spf13/cobra"

// deployCommands returns the commands of berth apply, plan and delete (the deploy engine, internal/apply).
func deployCommands(app *App) []*cobra.Command {
	_ = app
	return nil
}
