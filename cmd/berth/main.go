// Command berth installs and runs open-source software on Kubernetes; see
// internal/cli for its commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"berth.dev/berth/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, cli.NewApp(), os.Args[1:])
	stop()
	os.Exit(code)
}
