package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/localcluster"
)

func newKubectlCmd(app *App) *cobra.Command {
	name := localcluster.DefaultUpOptions().Name
	cmd := &cobra.Command{
		Use:   "kubectl [--name CLUSTER] -- ARGS...",
		Short: "Run kubectl against a local cluster",
		Long: `Run the kubectl that was built with a local cluster's control plane (same
version as its API server) with that cluster's kubeconfig. Arguments after --
go to kubectl unchanged.`,
		Example: `  berth kubectl -- get nodes -o wide
  berth kubectl --name staging -- get pods -A`,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := app.home()
			if err != nil {
				return err
			}
			c, err := localcluster.Open(home, name)
			if err != nil {
				return err
			}
			kubectl := filepath.Join(c.State.BinDir, localcluster.BinKubectl)
			if c.State.BinDir == "" {
				return errors.New("cluster " + name + " has never started, so it has no kubectl; run 'berth up --name " + name + "'")
			}
			k := exec.CommandContext(cmd.Context(), kubectl, append([]string{"--kubeconfig", c.KubeconfigPath()}, args...)...)
			k.Stdin, k.Stdout, k.Stderr = os.Stdin, app.Out, app.Err
			if err := k.Run(); err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					return &exitCodeError{code: exit.ExitCode()}
				}
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", name, "cluster name")
	return cmd
}

// exitCodeError makes berth exit with a child's exit code, without a message of
// its own (the child has printed why).
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return "" }
