package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/controller"
	"berth.dev/berth/internal/localcluster"
)

// controllerCommands returns the commands of berth controller, bootstrap, suspend, resume and reconcile (internal/controller).
func controllerCommands(app *App) []*cobra.Command {
	return []*cobra.Command{
		newControllerCmd(app),
		newBootstrapCmd(app),
		newSuspendCmd(app, true),
		newSuspendCmd(app, false),
		newReconcileCmd(app),
	}
}

// kubeFlags select a cluster.
type kubeFlags struct {
	kubeconfig string
	context    string
}

func (f *kubeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, $KUBECONFIG, else ~/.kube/config)")
	cmd.Flags().StringVar(&f.context, "context", "", "kubeconfig context (default: the current context)")
}

func (f *kubeFlags) config() (*rest.Config, error) {
	cfg, _, err := loadKubeconfig(f.kubeconfig, f.context)
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w (pass --kubeconfig, set KUBECONFIG, or start a local cluster with 'berth up')", err)
	}
	return cfg, nil
}

// loadKubeconfig is berth's one kubeconfig loader: an explicit file (else
// $KUBECONFIG, ~/.kube/config or the in-cluster config) and context (else the
// current one). It returns the context's namespace too ("" when it has none).
func loadKubeconfig(path, context string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		ns = ""
	}
	return cfg, ns, nil
}

func newControllerCmd(app *App) *cobra.Command {
	opts := controller.DefaultOptions()
	var kf kubeFlags
	logFormat := "json"
	memLimit := "auto"
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the GitOps controller that keeps the cluster equal to its Workspaces",
		Long: `Run berth's controller: for every Workspace (berth.dev/v1alpha1) in --namespace
it fetches the branch with go-git, decrypts the workspace's secrets in memory,
applies the apps in dependency order with the deploy engine, waits for each to
be healthy before its dependents, and writes the status (Ready, Reconciling,
Stalled per app) and Events. Drift of any object it applied (deleted, or a field
berth owns changed by someone else) is repaired within a second, from
metadata-only watches; a long --resync re-reads everything as a safety net.

It serves /hooks/git (GitHub, GitLab and Gitea push webhooks, signature
checked) on --webhook-addr, Prometheus metrics on --metrics-addr, /healthz and
/readyz on --probe-addr, and logs JSON to standard error.

With --console-addr it also serves the console (docs/console.md) for one
Workspace (--console-workspace, else the only one it follows), over a clone
of its repository made with the credential of spec.upgrades.writeSecretRef
(else spec.secretRef): every change made there is a commit by the signed-in
person, pushed to the Workspace's branch and reconciled by the controller.
'berth console --port-forward' reaches it and signs in; the Deployment that
'berth bootstrap' installs serves it on its port "console".

'berth bootstrap' installs it in a cluster; on a local cluster it runs as a
local process ('berth bootstrap --local').`,
		Example: `  berth controller --namespace berth-system --leader-elect
  berth controller --kubeconfig ~/.berth/clusters/dev/kubeconfig --log-format text`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := kf.config()
			if err != nil {
				return err
			}
			var h slog.Handler
			switch logFormat {
			case "json":
				h = slog.NewJSONHandler(app.Err, nil)
			case "text":
				h = slog.NewTextHandler(app.Err, nil)
			default:
				return fmt.Errorf("--log-format %q: use json or text", logFormat)
			}
			opts.Logger = logr.FromSlogHandler(h)
			// The console it serves logs through slog's default.
			slog.SetDefault(slog.New(h))
			// controller-runtime's own packages log through its global logger.
			ctrllog.SetLogger(opts.Logger)
			if opts.LeaderElection && opts.LeaderElectionNamespace == "" {
				opts.LeaderElectionNamespace = opts.Namespace
				if opts.LeaderElectionNamespace == "" {
					return errors.New("--leader-elect needs a namespace for its Lease: pass --namespace or --leader-election-namespace")
				}
			}
			self, _ := os.ReadFile("/proc/self/cgroup")
			limit, limitFrom, err := memoryLimit(memLimit, os.Getenv("GOMEMLIMIT"), "/sys/fs/cgroup", string(self))
			if err != nil {
				return err
			}
			if limit > 0 {
				debug.SetMemoryLimit(limit)
			}
			c, err := controller.New(cfg, opts)
			if err != nil {
				return err
			}
			opts.Logger.Info("berth controller starting", "namespace", opts.Namespace, "webhook", c.WebhookAddr(), "metrics", c.MetricsAddr(), "console", c.ConsoleAddr(), "apiServer", cfg.Host, "memoryLimit", limitFrom)
			return c.Start(cmd.Context())
		},
	}
	f := cmd.Flags()
	kf.add(cmd)
	f.StringVarP(&opts.Namespace, "namespace", "n", os.Getenv("POD_NAMESPACE"), "reconcile the Workspaces of this namespace only (default: $POD_NAMESPACE, else all)")
	f.StringVar(&opts.CacheDir, "cache-dir", opts.CacheDir, "directory for the git clones")
	f.IntVar(&opts.Workers, "workers", opts.Workers, "apps applied at once")
	f.DurationVar(&opts.Resync, "resync", opts.Resync, "how often every app is re-read in full, as a safety net behind event-driven drift repair")
	f.DurationVar(&opts.FetchTimeout, "fetch-timeout", opts.FetchTimeout, "bound on one git fetch")
	f.StringVar(&opts.MetricsAddr, "metrics-addr", opts.MetricsAddr, "address of /metrics, and of pprof when it is a loopback address or --metrics-secure (0 disables)")
	f.BoolVar(&opts.SecureMetrics, "metrics-secure", false, "serve --metrics-addr over HTTPS to bearer tokens allowed to get the path (nonResourceURLs /metrics, /debug/pprof/*), with pprof")
	f.StringVar(&opts.ProbeAddr, "probe-addr", opts.ProbeAddr, "address of /healthz and /readyz (0 disables)")
	f.StringVar(&opts.WebhookAddr, "webhook-addr", opts.WebhookAddr, "address of /hooks/git (0 disables)")
	f.StringVar(&opts.PprofAddr, "pprof-addr", "0", "address of /debug/pprof (0 disables)")
	f.BoolVar(&opts.LeaderElection, "leader-elect", false, "elect a leader among replicas with a Lease")
	f.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: --namespace)")
	f.StringVar(&logFormat, "log-format", logFormat, "log format: json or text")
	f.StringVar(&memLimit, "memory-limit", memLimit, "soft limit of the Go heap (GOMEMLIMIT): a size such as 900Mi, 0 for none, or auto: 90% of the container's memory limit, none without one; GOMEMLIMIT in the environment wins")
	f.StringVar(&opts.Console.Addr, "console-addr", "0", "address of the console, for 'berth console --port-forward' (0 disables)")
	f.StringVar(&opts.Console.Workspace, "console-workspace", "", "the Workspace the console serves: NAME or NAMESPACE/NAME (default: the only one)")
	f.BoolVar(&opts.Upgrades.Enabled, "upgrades", true, "poll the Workspaces' catalogs and bring upgrades under their policies (docs/upgrades.md); also serves /hooks/catalog")
	return cmd
}

func newBootstrapCmd(app *App) *cobra.Command {
	opts := controller.DefaultBootstrapOptions()
	var kf kubeFlags
	var keyFile, passwordFile, identityFile, knownHostsFile, cluster string
	var local, noController bool
	var out output
	cmd := &cobra.Command{
		Use:   "bootstrap --repo URL",
		Short: "Install the controller into the current cluster and point it at a workspace",
		Long: `Install berth's controller into the cluster: the Workspace CRD, a namespace,
least-privilege RBAC, the controller's Deployment and Service (the manifests are
built into berth; --image picks the image), Secrets holding the workspace's
git-crypt key, the git credentials and a webhook token, and a Workspace that
follows --repo. Running it again updates what changed and nothing else.

Credentials are read from files, never from the command line: --password-file
for an HTTPS token, --ssh-key and --known-hosts for SSH.

On a local cluster ('berth up'), whose simulated nodes run no containers,
--local installs only the CRD, the Secrets and the Workspace, and starts the same
controller as a local process against the cluster; its log is controller.log in
the cluster's directory. --no-controller installs the same and starts nothing,
for running 'berth controller' yourself.`,
		Example: `  berth bootstrap --repo https://git.example.com/acme/platform.git --password-file token.txt --key workspace.key
  berth bootstrap --repo ssh://git@git.example.com/acme/platform.git --ssh-key id_ed25519 --known-hosts known_hosts
  berth bootstrap --local --cluster dev --repo file:///home/me/platform`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			read := func(flag, path string) ([]byte, error) {
				if path == "" {
					return nil, nil
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return nil, fmt.Errorf("--%s: %w", flag, err)
				}
				return b, nil
			}
			var err error
			if opts.Key, err = read("key", keyFile); err != nil {
				return err
			}
			pw, err := read("password-file", passwordFile)
			if err != nil {
				return err
			}
			opts.Password = strings.TrimSpace(string(pw))
			if opts.Identity, err = read("ssh-key", identityFile); err != nil {
				return err
			}
			if opts.KnownHosts, err = read("known-hosts", knownHostsFile); err != nil {
				return err
			}
			opts.Local = local || noController
			// In a fleet workspace, --cluster names the cluster this is, and
			// the controller follows its rendered/CLUSTER/.
			member, err := fleetMember(opts.Workspace.URL, opts.Workspace.Path, cluster, cmd.Flags().Changed("cluster"))
			if err != nil {
				return err
			}
			if member != nil {
				opts.Workspace.Cluster = member.Name
				if !local && kf.kubeconfig == "" && kf.context == "" {
					kf.kubeconfig, kf.context = member.Kubeconfig, member.Context
				}
			}
			var cfg *rest.Config
			var lc *localcluster.Cluster
			if local {
				home, err := app.home()
				if err != nil {
					return err
				}
				if lc, err = localcluster.Open(home, cluster); err != nil {
					return fmt.Errorf("--local: %w (start it with 'berth up --name %s')", err, cluster)
				}
				kf.kubeconfig = lc.KubeconfigPath()
			}
			if cfg, err = kf.config(); err != nil {
				return err
			}
			p := newDeployProgress(app.Err)
			opts.Events = p.event
			res, err := controller.Bootstrap(cmd.Context(), cfg, opts)
			p.close()
			if err != nil {
				return err
			}
			var pid int
			var webhookURL string
			if local {
				if pid, webhookURL, err = startLocalController(cmd.Context(), lc, opts.Namespace, res.WebhookSecret); err != nil {
					return err
				}
			}
			if out == outputJSON {
				return writeJSON(app.Out, struct {
					*controller.BootstrapResult
					LocalPID int `json:"localPid,omitempty"`
				}{res, pid})
			}
			fmt.Fprintf(app.Out, "Installed berth's controller: %s\n", summary(res.Apply))
			if local {
				fmt.Fprintf(app.Out, "Controller running as a local process (pid %d; 'berth down' stops it); log: %s\n", pid, lc.AddonLog("controller"))
			}
			fmt.Fprintf(app.Out, "Workspace %s follows %s (branch %s).\n", res.Workspace, opts.Workspace.URL, opts.Workspace.Branch)
			ns, name, _ := strings.Cut(res.WebhookSecret, "/")
			where := "on service berth-controller (port 80)"
			if local {
				where = "at " + webhookURL
			}
			fmt.Fprintf(app.Out, "Push webhook: POST /hooks/git %s; its secret is in\n  kubectl -n %s get secret %s -o jsonpath='{.data.token}' | base64 -d\n", where, ns, name)
			return nil
		},
	}
	f := cmd.Flags()
	kf.add(cmd)
	f.StringVar(&opts.Workspace.URL, "repo", "", "git URL of the workspace (https://, ssh://, file://)")
	f.StringVar(&opts.Workspace.Branch, "branch", opts.Workspace.Branch, "branch to follow")
	f.StringVar(&opts.Workspace.Path, "path", "", "directory of the workspace inside the repository")
	f.DurationVar(&opts.Workspace.Interval.Duration, "interval", opts.Workspace.Interval.Duration, "how often to poll the branch")
	f.StringVar(&opts.Name, "name", opts.Name, "name of the Workspace")
	f.StringVarP(&opts.Namespace, "namespace", "n", opts.Namespace, "namespace of the controller, its Secrets and the Workspace")
	f.StringVar(&opts.Image, "image", opts.Image, "controller image")
	f.StringVar(&keyFile, "key", "", "the workspace's git-crypt key file (needed when it holds secrets)")
	f.StringVar(&opts.Username, "username", "", "HTTPS user name (default git)")
	f.StringVar(&passwordFile, "password-file", "", "file holding an HTTPS password or token")
	f.StringVar(&identityFile, "ssh-key", "", "SSH private key file")
	f.StringVar(&knownHostsFile, "known-hosts", "", "known_hosts file for SSH")
	f.BoolVar(&local, "local", false, "local cluster: run the controller as a local process instead of a Deployment")
	f.BoolVar(&noController, "no-controller", false, "install the CRD, Secrets and Workspace only; run 'berth controller' yourself")
	f.StringVar(&cluster, "cluster", localcluster.DefaultUpOptions().Name, "the cluster's name in a fleet workspace (berth.yaml clusters:); with --local, also the local cluster's")
	f.DurationVar(&opts.Timeout, "timeout", opts.Timeout, "how long to wait for the controller and the first sync")
	addOutputFlag(cmd, &out)
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

// startLocalController runs 'berth controller' as an add-on of a local cluster:
// a detached process recorded like the control plane's, replacing one started
// before, stopped by 'berth down'. Its push webhook listens on a free loopback
// port, so clusters side by side do not collide; it returns the pid and the
// webhook's URL.
func startLocalController(ctx context.Context, c *localcluster.Cluster, namespace, webhookSecret string) (int, string, error) {
	exe, err := berthExecutable()
	if err != nil {
		return 0, "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, "", err
	}
	webhook := l.Addr().String()
	// A fixed metrics port, so that the cluster's Prometheus (berth up
	// --monitoring) can scrape it.
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return 0, "", err
	}
	metrics := ml.Addr().String()
	l.Close()
	ml.Close()
	args := []string{"controller",
		"--kubeconfig", c.KubeconfigPath(), "--namespace", namespace,
		"--cache-dir", filepath.Join(c.Dir, "controller-cache"),
		"--metrics-addr", metrics, "--probe-addr", "127.0.0.1:0", "--webhook-addr", webhook}
	// The console, on the address the cluster records for it ('berth
	// console --port-forward' connects there).
	if addr := c.ConsoleAddr(); addr != "" {
		args = append(args, "--console-addr", addr)
	}
	pid, err := c.StartAddon(ctx, "controller", exe, args)
	if err != nil {
		return 0, "", fmt.Errorf("starting the local controller: %w", err)
	}
	if err := connectMonitoring(ctx, c, namespace, webhookSecret, metrics, "http://"+webhook+"/hooks/alertmanager"); err != nil {
		return 0, "", err
	}
	return pid, "http://" + webhook + "/hooks/git", nil
}

// connectMonitoring tells the local cluster's monitoring where the controller
// serves metrics and its Alertmanager webhook, and the webhook's bearer token
// (the workspace's webhook token, from the Secret namespace/name).
func connectMonitoring(ctx context.Context, c *localcluster.Cluster, namespace, secretRef, metricsAddr, alertsURL string) error {
	cfg, err := c.RESTConfig()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ns, name, ok := strings.Cut(secretRef, "/")
	if !ok {
		ns, name = namespace, secretRef
	}
	sec, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading the webhook token for the local monitoring: %w", err)
	}
	if err := c.ConnectController(ctx, metricsAddr, alertsURL, sec.Data["token"]); err != nil {
		return fmt.Errorf("connecting the local controller to the cluster's monitoring: %w", err)
	}
	return nil
}

// berthExecutable is the absolute path of the berth binary, for the processes
// berth starts of itself (overridable, for tests and wrappers).
func berthExecutable() (string, error) {
	exe, err := filterExecutable()
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(exe) {
		if exe, err = exec.LookPath(exe); err != nil {
			return "", fmt.Errorf("finding the berth binary: %w", err)
		}
	}
	return exe, nil
}

// workspaceFlags select a Workspace.
type workspaceFlags struct {
	kubeFlags
	namespace string
	name      string
}

func (f *workspaceFlags) add(cmd *cobra.Command) {
	f.kubeFlags.add(cmd)
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", controller.DefaultBootstrapOptions().Namespace, "namespace of the Workspace")
	cmd.Flags().StringVar(&f.name, "workspace", "", "name of the Workspace (default: the only one in the namespace)")
}

// get returns a client and the selected Workspace.
func (f *workspaceFlags) get(ctx context.Context) (client.Client, *berthv1.Workspace, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		return nil, nil, err
	}
	if f.name != "" {
		var ws berthv1.Workspace
		if err := c.Get(ctx, client.ObjectKey{Namespace: f.namespace, Name: f.name}, &ws); err != nil {
			return nil, nil, fmt.Errorf("workspace %s/%s: %w (list them with 'kubectl get workspaces -A')", f.namespace, f.name, err)
		}
		return c, &ws, nil
	}
	var list berthv1.WorkspaceList
	if err := c.List(ctx, &list, client.InNamespace(f.namespace)); err != nil {
		return nil, nil, fmt.Errorf("listing Workspaces in %s: %w (is the controller installed? 'berth bootstrap' installs it)", f.namespace, err)
	}
	switch len(list.Items) {
	case 0:
		return nil, nil, fmt.Errorf("no Workspace in namespace %s: pass -n NAMESPACE, or create one with 'berth bootstrap'", f.namespace)
	case 1:
		return c, &list.Items[0], nil
	}
	var names []string
	for _, w := range list.Items {
		names = append(names, w.Name)
	}
	return nil, nil, fmt.Errorf("namespace %s holds several Workspaces (%s): pick one with --workspace", f.namespace, strings.Join(names, ", "))
}

func newSuspendCmd(app *App, suspend bool) *cobra.Command {
	var wf workspaceFlags
	var out output
	verb, short, long := "suspend", "Stop applying and repairing an app, or the whole workspace", `Suspend an app: the controller neither applies new commits to it nor repairs
its drift, until 'berth resume APP'. Without APP the whole workspace is suspended.
Use it to make a hand change during an incident without the controller undoing it.`
	if !suspend {
		verb, short, long = "resume", "Resume applying and repairing a suspended app, or the whole workspace", `Resume an app suspended by 'berth suspend APP': the controller applies the
branch's current commit to it and repairs its drift again. Without APP the whole
workspace is resumed.`
	}
	cmd := &cobra.Command{
		Use:     verb + " [APP]",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  berth %s airflow\n  berth %s --workspace platform -n berth-system", verb, verb),
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ws, err := wf.get(cmd.Context())
			if err != nil {
				return err
			}
			patch := client.MergeFrom(ws.DeepCopy())
			target := "workspace " + ws.Namespace + "/" + ws.Name
			if len(args) == 0 {
				ws.Spec.Suspend = suspend
			} else {
				target = "app " + args[0]
				var st berthv1.WorkspaceApp
				err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ws.Namespace, Name: berthv1.WorkspaceAppName(ws.Name, args[0])}, &st)
				if client.IgnoreNotFound(err) != nil {
					return fmt.Errorf("reading the state of app %s: %w", args[0], err)
				}
				if err != nil && suspend {
					return fmt.Errorf("workspace %s/%s has no app %q in its status; 'berth reconcile' lists its apps", ws.Namespace, ws.Name, args[0])
				}
				var apps []string
				for _, a := range ws.Spec.SuspendedApps {
					if a != args[0] {
						apps = append(apps, a)
					}
				}
				if suspend {
					apps = append(apps, args[0])
				}
				ws.Spec.SuspendedApps = apps
			}
			if err := c.Patch(cmd.Context(), ws, patch); err != nil {
				return fmt.Errorf("updating workspace %s/%s: %w", ws.Namespace, ws.Name, err)
			}
			if out == outputJSON {
				return writeJSON(app.Out, map[string]any{"workspace": ws.Namespace + "/" + ws.Name, "suspend": ws.Spec.Suspend, "suspendedApps": ws.Spec.SuspendedApps})
			}
			past := "Suspended"
			if !suspend {
				past = "Resumed"
			}
			fmt.Fprintf(app.Out, "%s %s.\n", past, target)
			return nil
		},
	}
	wf.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func newReconcileCmd(app *App) *cobra.Command {
	var wf workspaceFlags
	var out output
	var noWait bool
	timeout := 5 * time.Minute
	cmd := &cobra.Command{
		Use:   "reconcile [APP]",
		Short: "Fetch and apply the workspace now, and show the state of its apps",
		Long: `Ask the controller to fetch the branch and apply every app now, without
waiting for the next poll, then wait until it has done so and print the state of
each app (or of APP). Unchanged apps are re-read, not rewritten.`,
		Example: `  berth reconcile
  berth reconcile airflow -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, ws, err := wf.get(ctx)
			if err != nil {
				return err
			}
			stamp := time.Now().UTC().Format(time.RFC3339Nano)
			patch := client.MergeFrom(ws.DeepCopy())
			if ws.Annotations == nil {
				ws.Annotations = map[string]string{}
			}
			ws.Annotations[berthv1.AnnotationReconcileRequestedAt] = stamp
			if err := c.Patch(ctx, ws, patch); err != nil {
				return fmt.Errorf("updating workspace %s/%s: %w", ws.Namespace, ws.Name, err)
			}
			if !noWait && !ws.Spec.Suspend {
				fmt.Fprintf(app.Err, "Waiting for the controller to reconcile %s/%s...\n", ws.Namespace, ws.Name)
				wctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				err := wait.PollUntilContextCancel(wctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
					if err := c.Get(ctx, client.ObjectKeyFromObject(ws), ws); err != nil {
						return false, nil
					}
					return ws.Status.LastHandledReconcileAt == stamp, nil
				})
				if err != nil {
					return fmt.Errorf("the controller did not reconcile %s/%s within %s: is it running? ('kubectl -n %s get pods', or 'berth bootstrap --local' on a local cluster)", ws.Namespace, ws.Name, timeout, ws.Namespace)
				}
			}
			list, err := controller.ListWorkspaceApps(ctx, c, ws)
			if err != nil {
				return err
			}
			apps := []berthv1.AppStatus{}
			for _, a := range list {
				if len(args) == 0 || a.Spec.App == args[0] {
					apps = append(apps, a.Status)
				}
			}
			slices.SortFunc(apps, func(a, b berthv1.AppStatus) int { return strings.Compare(a.Name, b.Name) })
			if len(args) == 1 && len(apps) == 0 {
				return fmt.Errorf("workspace %s/%s has no app %q", ws.Namespace, ws.Name, args[0])
			}
			if out == outputJSON {
				return writeJSON(app.Out, map[string]any{"workspace": ws.Namespace + "/" + ws.Name, "revision": ws.Status.LastFetchedRevision, "conditions": ws.Status.Conditions, "apps": apps})
			}
			printWorkspace(app.Out, ws, apps)
			if r := apimeta.FindStatusCondition(ws.Status.Conditions, berthv1.ConditionReady); len(args) == 0 && r != nil && r.Status != metav1.ConditionTrue {
				return &exitCodeError{code: 1}
			}
			return nil
		},
	}
	wf.add(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "ask for the reconcile and return")
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "how long to wait for the controller")
	addOutputFlag(cmd, &out)
	return cmd
}

func printWorkspace(w io.Writer, ws *berthv1.Workspace, apps []berthv1.AppStatus) {
	rev := ws.Status.LastFetchedRevision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	state := "unknown"
	if r := apimeta.FindStatusCondition(ws.Status.Conditions, berthv1.ConditionReady); r != nil {
		state = r.Message
	}
	fmt.Fprintf(w, "Workspace %s/%s at %s: %s\n", ws.Namespace, ws.Name, rev, state)
	for _, a := range apps {
		st := "unknown"
		if a.Suspended {
			st = "suspended"
		} else if r := apimeta.FindStatusCondition(a.Conditions, berthv1.ConditionReady); r != nil {
			switch {
			case r.Status == metav1.ConditionTrue:
				st = "ready"
			case apimeta.IsStatusConditionTrue(a.Conditions, berthv1.ConditionStalled):
				st = "stalled: " + r.Message
			default:
				st = "not ready: " + r.Message
			}
		}
		fmt.Fprintf(w, "  %-24s %-16s %3d objects  %s\n", a.Name, a.Namespace, a.Inventory.Objects, st)
	}
}
