package cli

import "github.com/spf13/cobra"

// packageCommands returns the commands of berth catalog, search, show and template (internal/pkgspec, catalog, resolve, render).
func packageCommands(app *App) []*cobra.Command {
	_ = app
	return nil
}
