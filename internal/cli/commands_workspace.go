package cli

import "github.com/spf13/cobra"

// workspaceCommands returns the commands of berth init, install, build, deploy, status, config, upgrade, history, rollback, uninstall and quickstart (internal/workspace, internal/lifecycle).
func workspaceCommands(app *App) []*cobra.Command {
	_ = app
	return nil
}
