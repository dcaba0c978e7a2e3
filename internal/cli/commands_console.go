package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/console"
	"berth.dev/berth/internal/controller"
	"berth.dev/berth/internal/workspace"
)

func newConsoleCmd(app *App) *cobra.Command {
	var f wsFlags
	var listen, certFile, keyFile string
	var forward bool
	pf := portForwardFlags{namespace: controller.DefaultBootstrapOptions().Namespace, reconnect: time.Minute}
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Serve the operations console: apps (resources, logs, history, configuration, runbooks), upgrades, incidents, the fleet and the catalog",
		Long: `Serve berth's web console for the workspace and its cluster. It prints a URL
that signs in the first person who opens it (once), as the person running the
command. With console.oidc in berth.yaml, people also sign in with the team's
OpenID provider, and the groups in console.roles decide what they may do
(viewer, operator, admin). docs/console.md is a guide to each page.

Every change made in the console is a commit authored by the signed-in
person, deployed through the same path as 'berth deploy' (the controller, when
one manages the cluster). The OIDC client secret is read from the environment
variable console.oidc.clientSecretEnv names (BERTH_CONSOLE_CLIENT_SECRET by
default), never from the workspace.

With --port-forward it serves nothing itself: it reaches the console that the
controller serves in the cluster (the Deployment 'berth bootstrap' installs,
in --namespace) through a port-forward of the API server to its ready pod, on
--listen, and prints a link that signs you in there once, within five
minutes, as your git user.name and user.email (role admin). The link's token
is checked against a short-lived Secret this command creates in the
controller's namespace (holding only the token's hash), so only someone
allowed to create Secrets there can sign in this way; the Secret is deleted
when used, or when the command ends. The forward lasts until Ctrl-C; when the
pod goes, it follows the controller's next ready pod. For the local
controller of 'berth bootstrap --local' (or 'berth quickstart'), which runs
as a process and has no pod, it prints the link to the console that
controller serves on the local cluster's recorded address.`,
		Example: `  berth console
  berth console --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem
  berth console --port-forward
  berth console --port-forward -n berth-system --listen 127.0.0.1:9000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if forward {
				if certFile != "" || keyFile != "" {
					return errors.New("--tls-cert and --tls-key serve a local console; --port-forward reaches the controller's, which serves plain HTTP through the forward")
				}
				return pf.run(ctx, app, f.dir, listen)
			}
			env, err := app.env(&f, nil)
			if err != nil {
				return err
			}
			if (certFile == "") != (keyFile == "") {
				return errors.New("--tls-cert and --tls-key go together")
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listening on %s: %w; pick another address with --listen", listen, err)
			}
			defer ln.Close()
			scheme := "http"
			if certFile != "" {
				scheme = "https"
			}
			base := scheme + "://" + ln.Addr().String()
			opts := console.DefaultOptions()
			opts.Env = env
			opts.Secure = certFile != ""
			opts.TokenUser = gitIdentity(ctx, env.WS.Root)
			var cfg *rest.Config
			if cfg, err = env.Cluster(); err != nil {
				fmt.Fprintf(app.Err, "warning: %v; the console shows the workspace only\n", err)
				cfg = nil
			}
			opts.Cluster = cfg
			if c := env.WS.Config.Console; c != nil {
				opts.Roles = c.Roles
				if o := c.OIDC; o != nil {
					secretEnv := o.ClientSecretEnv
					if secretEnv == "" {
						secretEnv = workspace.DefaultClientSecretEnv
					}
					redirect := o.RedirectURL
					if redirect == "" {
						redirect = base + "/auth/callback"
					}
					opts.OIDC = &console.OIDCOptions{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: os.Getenv(secretEnv), RedirectURL: redirect, Scopes: o.Scopes, GroupsClaim: o.GroupsClaim}
				}
			}
			srv, err := console.New(ctx, opts)
			if err != nil {
				return err
			}
			hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(app.Out, "berth console is serving %s\nOpen this link to sign in (it works once):\n\n    %s\n\n", env.WS.Root, srv.SignInURL(base))
			if opts.OIDC != nil {
				fmt.Fprintf(app.Out, "People sign in at %s with %s.\n", base, opts.OIDC.Issuer)
			}
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = hs.Shutdown(sctx)
			}()
			slog.Info("console listening", "addr", ln.Addr().String())
			if certFile != "" {
				err = hs.ServeTLS(ln, certFile, keyFile)
			} else {
				err = hs.Serve(ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve the console on; with --port-forward, the local end of the forward (port 0: any free port)")
	cmd.Flags().StringVar(&certFile, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	cmd.Flags().StringVar(&keyFile, "tls-key", "", "the certificate's private key (PEM)")
	cmd.Flags().BoolVar(&forward, "port-forward", false, "reach the console the controller serves in the cluster, through a port-forward on --listen")
	cmd.Flags().StringVarP(&pf.namespace, "namespace", "n", pf.namespace, "with --port-forward: the controller's namespace")
	cmd.Flags().StringVar(&pf.kubeconfig, "kubeconfig", "", "with --port-forward: kubeconfig file (default: the workspace's cluster, else $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&pf.context, "context", "", "with --port-forward: kubeconfig context")
	cmd.Flags().DurationVar(&pf.reconnect, "reconnect-timeout", pf.reconnect, "with --port-forward: how long to wait for a ready pod of the controller when the one forwarded to goes")
	return cmd
}

// gitIdentity is the person running the console, as git knows them: the
// author of what they change through the one-time sign-in.
func gitIdentity(ctx context.Context, dir string) console.User {
	get := func(key string) string {
		out, err := exec.CommandContext(ctx, "git", "-C", dir, "config", key).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	u := console.User{Name: get("user.name"), Email: get("user.email")}
	if u.Name == "" {
		u.Name = os.Getenv("USER")
	}
	if u.Name == "" {
		u.Name = "berth console"
	}
	return u
}
