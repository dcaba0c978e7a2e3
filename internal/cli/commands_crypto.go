package cli

import "github.com/spf13/cobra"

// cryptoCommands returns the commands of berth crypto (internal/secrets).
func cryptoCommands(app *App) []*cobra.Command {
	_ = app
	return nil
}
