package cli

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"berth.dev/berth/internal/controller"
	"berth.dev/berth/internal/localcluster"
)

func debugCommands(app *App) []*cobra.Command {
	cmd := &cobra.Command{
		Use:   "debug",
		Short: "Collect what a bug report about berth needs",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDebugProfileCmd(app))
	return []*cobra.Command{cmd}
}

// profileFlags say which controller to profile and how.
type profileFlags struct {
	kubeFlags
	seconds   int
	out       string
	addr      string
	local     bool
	cluster   string
	namespace string
	tokenFile string
}

func newDebugProfileCmd(app *App) *cobra.Command {
	f := profileFlags{seconds: 30, cluster: localcluster.DefaultUpOptions().Name, namespace: controller.DefaultBootstrapOptions().Namespace}
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Fetch a CPU profile of the running controller, for a bug report",
		Long: `Fetch a CPU profile of berth's controller over --seconds, from the pprof
endpoints it serves on its metrics port, and write it to -o (default
berth-controller-cpu-TIME.pprof). Attach the file to a bug report, or read it
with 'go tool pprof FILE'.

Which controller:

- --local: the controller that 'berth bootstrap --local' runs for the local
  cluster --cluster (its metrics address is in its log);
- --addr HOST:PORT (or an http:// or https:// URL): a controller you run
  yourself, such as 'berth controller --metrics-addr 127.0.0.1:8080';
- otherwise the controller in the cluster of the kubeconfig: a port-forward
  to its pod (the leader when there are several) in --namespace, over HTTPS.

The controller serves pprof on a loopback metrics address as it is, and on
any other only with --metrics-secure, which lets in a bearer token of a user
allowed to get the nonResourceURL /debug/pprof/*: the kubeconfig's token, or
--token-file (for example from 'kubectl create token').`,
		Example: `  berth debug profile --local --seconds 30 -o controller.pprof
  berth debug profile --addr 127.0.0.1:8080
  berth debug profile -n berth-system --token-file token.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.seconds < 1 || f.seconds > 600 {
				return fmt.Errorf("--seconds %d: give 1 to 600", f.seconds)
			}
			if f.local && f.addr != "" {
				return errors.New("--local and --addr name two controllers: pass one")
			}
			out := f.out
			if out == "" {
				out = "berth-controller-cpu-" + time.Now().UTC().Format("20060102-150405") + ".pprof"
			}
			data, from, err := f.fetch(cmd.Context(), app)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, data, 0o644); err != nil {
				return fmt.Errorf("-o: %w", err)
			}
			fmt.Fprintf(app.Out, "Wrote a %d s CPU profile of the controller at %s to %s (read it with 'go tool pprof %s').\n", f.seconds, from, out, out)
			return nil
		},
	}
	fl := cmd.Flags()
	f.kubeFlags.add(cmd)
	fl.IntVar(&f.seconds, "seconds", f.seconds, "how long to profile")
	fl.StringVarP(&f.out, "output", "o", "", "file to write the profile to (default berth-controller-cpu-TIME.pprof)")
	fl.StringVar(&f.addr, "addr", "", "metrics address of a controller you run yourself: HOST:PORT or a URL")
	fl.BoolVar(&f.local, "local", false, "the local cluster's controller (started by 'berth bootstrap --local')")
	fl.StringVar(&f.cluster, "cluster", f.cluster, "local cluster name, with --local")
	fl.StringVarP(&f.namespace, "namespace", "n", f.namespace, "namespace of the in-cluster controller")
	fl.StringVar(&f.tokenFile, "token-file", "", "bearer token for a controller run with --metrics-secure (default: the kubeconfig's)")
	return cmd
}

// fetch gets the profile and says where from.
func (f *profileFlags) fetch(ctx context.Context, app *App) ([]byte, string, error) {
	token := ""
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, "", fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	client := &http.Client{Transport: &http.Transport{
		// controller-runtime serves --metrics-secure with a self-signed
		// certificate; the token is the authentication that matters.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // self-signed metrics certificate
	}}
	switch {
	case f.addr != "":
		base := f.addr
		if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
			base = "http://" + base
		}
		data, err := getProfile(ctx, client, base, token, f.seconds)
		return data, base, err
	case f.local:
		home, err := app.home()
		if err != nil {
			return nil, "", err
		}
		lc, err := localcluster.Open(home, f.cluster)
		if err != nil {
			return nil, "", fmt.Errorf("--local: %w (start it with 'berth up --name %s')", err, f.cluster)
		}
		addr, err := localMetricsAddr(lc.AddonLog("controller"))
		if err != nil {
			return nil, "", err
		}
		data, err := getProfile(ctx, client, "http://"+addr, token, f.seconds)
		return data, addr, err
	}
	cfg, err := f.config()
	if err != nil {
		return nil, "", err
	}
	if token != "" {
		cfg = rest.CopyConfig(cfg)
		cfg.BearerToken, cfg.BearerTokenFile = token, ""
	}
	return f.fetchInCluster(ctx, cfg, client)
}

// fetchInCluster port-forwards to the controller's pod and fetches over HTTPS
// with the kubeconfig's credentials (a bearer token: client certificates do
// not reach the controller through the tunnel).
func (f *profileFlags) fetchInCluster(ctx context.Context, cfg *rest.Config, client *http.Client) ([]byte, string, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", err
	}
	pod, err := controllerPod(ctx, cs, f.namespace)
	if err != nil {
		return nil, "", err
	}
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, "", err
	}
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(f.namespace).Name(pod).SubResource("portforward")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, req.URL())
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	var pfErr bytes.Buffer
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:metrics"}, stop, ready, io.Discard, &pfErr)
	if err != nil {
		return nil, "", err
	}
	failed := make(chan error, 1)
	go func() { failed <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-failed:
		return nil, "", fmt.Errorf("port-forwarding to pod %s/%s: %v %s", f.namespace, pod, err, strings.TrimSpace(pfErr.String()))
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) == 0 {
		return nil, "", fmt.Errorf("port-forwarding to pod %s/%s: no local port: %v", f.namespace, pod, err)
	}
	// The kubeconfig's bearer credentials (a token, an exec plugin), without
	// its TLS settings, which are the API server's.
	authed, err := rest.HTTPWrappersForConfig(cfg, client.Transport)
	if err != nil {
		return nil, "", err
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", ports[0].Local)
	data, err := getProfile(ctx, &http.Client{Transport: authed}, base, "", f.seconds)
	if err != nil {
		return nil, "", fmt.Errorf("pod %s/%s: %w", f.namespace, pod, err)
	}
	return data, "pod " + f.namespace + "/" + pod, nil
}

// controllerPod picks the controller's running pod: the leader's when the
// Lease names one.
func controllerPod(ctx context.Context, cs kubernetes.Interface, ns string) (string, error) {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=berth-controller"})
	if err != nil {
		return "", fmt.Errorf("listing the controller's pods in %s: %w", ns, err)
	}
	var running []string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning {
			running = append(running, p.Name)
		}
	}
	if len(running) == 0 {
		return "", fmt.Errorf("no running berth-controller pod in namespace %s: pass -n, or --local for a local cluster's controller", ns)
	}
	sort.Strings(running)
	if lease, err := cs.CoordinationV1().Leases(ns).Get(ctx, "berth-controller", metav1.GetOptions{}); err == nil && lease.Spec.HolderIdentity != nil {
		for _, p := range running {
			if strings.HasPrefix(*lease.Spec.HolderIdentity, p+"_") {
				return p, nil
			}
		}
	}
	return running[0], nil
}

// getProfile fetches a CPU profile from a controller's metrics server at base.
func getProfile(ctx context.Context, client *http.Client, base, token string, seconds int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second+time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(base, "/"), seconds), nil)
	if err != nil {
		return nil, fmt.Errorf("the controller's address %q: %w", base, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the profile from %s: %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the profile from %s: %w", base, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, fmt.Errorf("%s refused the profile (%s: %s): pass --token-file with a token of a user allowed to get the nonResourceURL /debug/pprof/*",
			base, resp.Status, strings.TrimSpace(string(body)))
	case http.StatusNotFound:
		return nil, fmt.Errorf("%s serves no pprof (404): the controller serves it on a loopback --metrics-addr, or on any other with --metrics-secure", base)
	default:
		return nil, fmt.Errorf("%s answered %s: %s", base, resp.Status, strings.TrimSpace(string(body)))
	}
	// A CPU profile is gzipped protobuf; anything else is not one.
	if zr, err := gzip.NewReader(bytes.NewReader(body)); err != nil {
		return nil, fmt.Errorf("%s answered with no CPU profile: %w", base, err)
	} else if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, fmt.Errorf("%s answered with a broken CPU profile: %w", base, err)
	}
	return body, nil
}

// localMetricsAddr reads the metrics address of the local controller from its
// log: the last "berth controller starting" line names it.
func localMetricsAddr(logPath string) (string, error) {
	fh, err := os.Open(logPath)
	if err != nil {
		return "", fmt.Errorf("reading the local controller's log: %w (is it running? 'berth bootstrap --local' starts it)", err)
	}
	defer fh.Close()
	addr := ""
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg     string `json:"msg"`
			Metrics string `json:"metrics"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "berth controller starting" {
			addr = line.Metrics
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading the local controller's log %s: %w", logPath, err)
	}
	if addr == "" {
		return "", fmt.Errorf("the local controller's log %s names no metrics address: restart it with 'berth bootstrap --local' (a berth older than 'debug profile' did not log it)", logPath)
	}
	return addr, nil
}
