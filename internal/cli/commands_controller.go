package cli

import "github.com/spf13/cobra"

// controllerCommands returns the commands of berth controller, bootstrap, suspend, resume and reconcile (internal/controller).
func controllerCommands(app *App) []*cobra.Command {
	_ = app
	return nil
}
