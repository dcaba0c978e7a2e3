// Package cli defines berth's commands: thin cobra wrappers over the libraries in
// internal/, built by constructors so that tests can run them in-process.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/localcluster"
)

// App holds what commands share: where they write, and where berth keeps state.
type App struct {
	Out io.Writer
	Err io.Writer
	// Home is berth's state directory; localcluster.DefaultHome when empty.
	Home string
}

// NewApp returns an App writing to the process's standard streams.
func NewApp() *App { return &App{Out: os.Stdout, Err: os.Stderr} }

func (a *App) home() (string, error) {
	if a.Home != "" {
		return a.Home, nil
	}
	return localcluster.DefaultHome()
}

// NewRootCmd builds the berth command tree.
func NewRootCmd(app *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "Install and run production-grade open-source software on Kubernetes",
		Long: `berth installs production-grade open-source software on Kubernetes from a
catalog of packages, renders it into your own git repository, and keeps the cluster
equal to that repository afterwards.

It also runs a local Kubernetes control plane without Docker ('berth up'), for
trying berth and for testing.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(app.Out)
	root.SetErr(app.Err)
	root.AddCommand(
		newVersionCmd(app),
		newUpCmd(app),
		newStandInsCmd(app),
		newRuleSyncCmd(app),
		newDownCmd(app),
		newClusterCmd(app),
		newKubectlCmd(app),
	)
	// Each area of berth registers its commands from a file of its own.
	root.AddCommand(deployCommands(app)...)
	root.AddCommand(packageCommands(app)...)
	root.AddCommand(cryptoCommands(app)...)
	root.AddCommand(workspaceCommands(app)...)
	root.AddCommand(controllerCommands(app)...)
	root.AddCommand(debugCommands(app)...)
	root.AddCommand(day2Commands(app)...)
	root.AddCommand(upgradesCommands(app)...)
	root.AddCommand(newConsoleCmd(app))
	root.AddCommand(fleetCommands(app)...)
	return root
}

// Execute runs the command line and returns the process exit code, printing any
// error to app.Err.
func Execute(ctx context.Context, app *App, args []string) int {
	cmd := NewRootCmd(app)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		var exit *exitCodeError
		if errors.As(err, &exit) {
			return exit.code
		}
		fmt.Fprintf(app.Err, "Error: %v%s\n", err, hints(err))
		return 1
	}
	return 0
}

// output is the value of an -o/--output flag.
type output string

const (
	outputText output = "text"
	outputJSON output = "json"
)

func (o *output) String() string { return string(*o) }
func (o *output) Type() string   { return "format" }
func (o *output) Set(v string) error {
	switch output(v) {
	case outputText, outputJSON:
		*o = output(v)
		return nil
	}
	return fmt.Errorf("unknown output format %q: use text or json", v)
}

func addOutputFlag(cmd *cobra.Command, o *output) {
	*o = outputText
	cmd.Flags().VarP(o, "output", "o", "output format: text or json")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
