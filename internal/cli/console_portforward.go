package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"berth.dev/berth/internal/console"
	"berth.dev/berth/internal/controller"
	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/workspace"
)

// portForwardFlags say which controller's console to reach.
type portForwardFlags struct {
	kubeFlags
	namespace string
	// reconnect bounds the wait for another ready pod when the one
	// forwarded to goes.
	reconnect time.Duration
}

// controllerDeployment is the Deployment 'berth bootstrap' installs.
const controllerDeployment = "berth-controller"

// consoleTarget is where the controller's console is: a pod to port-forward
// to, or the address of a local controller.
type consoleTarget struct {
	deploy *appsv1.Deployment
	port   int
	local  string
}

// portForwardConsole signs the person in to the console the controller
// serves: it mints a one-time sign-in Secret, forwards a local port to the
// controller's pod (or points at the local controller), prints the sign-in
// URL, and keeps the forward up until ctx ends; the Secret is deleted then
// if it was not used.
func (f *portForwardFlags) run(ctx context.Context, app *App, dir, listen string) error {
	cfg, err := f.clusterConfig(dir)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	target, err := f.find(ctx, app, cs, cfg)
	if err != nil {
		return err
	}
	var pod *corev1.Pod
	if target.local == "" {
		if pod, err = readyPod(ctx, cs, target.deploy); err != nil {
			return err
		}
	}
	who := gitIdentity(ctx, dir)
	signIn, err := console.MintSignIn(ctx, cs, f.namespace, who, 0)
	if err != nil {
		if apierrors.IsForbidden(err) {
			return fmt.Errorf("signing in to the controller's console needs the right to create Secrets in namespace %s, which you lack: %w", f.namespace, err)
		}
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := console.DeleteSignIn(cctx, cs, f.namespace, signIn); err != nil {
			fmt.Fprintf(app.Err, "warning: %v (it expires at %s)\n", err, signIn.Expires.Format(time.RFC3339))
		}
	}()
	url := func(addr string) string {
		return "http://" + addr + "/signin?token=" + signIn.Token
	}
	signedInAs := who.Name
	if who.Email != "" {
		signedInAs += " <" + who.Email + ">"
	}
	if target.local != "" {
		fmt.Fprintf(app.Out, "The local controller serves its console at http://%s\nOpen this link to sign in as %s (it works once, until %s):\n\n    %s\n\nPress Ctrl-C to stop.\n",
			target.local, signedInAs, signIn.Expires.Local().Format("15:04:05"), url(target.local))
		<-ctx.Done()
		return nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: give HOST:PORT: %w", listen, err)
	}
	local, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("--listen %q: the port is not a number", listen)
	}
	printed := false
	for {
		ready := make(chan struct{})
		stop := make(chan struct{})
		fw, err := forwarder(cfg, cs, pod, host, local, target.port, stop, ready)
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- fw.ForwardPorts() }()
		select {
		case err := <-done:
			return fmt.Errorf("port-forward from %s to pod %s/%s: %w (is that address free? pick another with --listen)", net.JoinHostPort(host, strconv.Itoa(local)), pod.Namespace, pod.Name, err)
		case <-ctx.Done():
			close(stop)
			<-done
			return nil
		case <-ready:
		}
		if ports, err := fw.GetPorts(); err == nil && len(ports) > 0 {
			local = int(ports[0].Local)
		}
		addr := net.JoinHostPort(host, strconv.Itoa(local))
		if !printed {
			fmt.Fprintf(app.Out, "Forwarding %s to the console of the controller (pod %s/%s).\nOpen this link to sign in as %s (it works once, until %s):\n\n    %s\n\nPress Ctrl-C to stop.\n",
				addr, pod.Namespace, pod.Name, signedInAs, signIn.Expires.Local().Format("15:04:05"), url(addr))
			printed = true
		} else {
			// Between two pods the local port is closed: say when it works
			// again.
			fmt.Fprintf(app.Err, "Forwarding %s again, now to pod %s/%s.\n", addr, pod.Namespace, pod.Name)
		}
		gone := watchPod(ctx, cs, pod)
		select {
		case <-ctx.Done():
			close(stop)
			<-done
			return nil
		case err := <-done:
			fmt.Fprintf(app.Err, "The port-forward to pod %s/%s ended (%v); finding the controller's pod again...\n", pod.Namespace, pod.Name, err)
		case why := <-gone:
			close(stop)
			<-done
			fmt.Fprintf(app.Err, "Pod %s/%s %s; finding the controller's pod again...\n", pod.Namespace, pod.Name, why)
		}
		if pod, err = f.waitReadyPod(ctx, cs, target.deploy); err != nil {
			return err
		}
	}
}

// clusterConfig is the cluster of --kubeconfig/--context, else the
// workspace's (when run in one), else the default kubeconfig's.
func (f *portForwardFlags) clusterConfig(dir string) (*rest.Config, error) {
	if f.kubeconfig == "" && f.context == "" {
		if ws, err := workspace.Open(dir); err == nil {
			return clusterConfig(ws.Config.Cluster)()
		}
	}
	return f.config()
}

// find locates the controller: its Deployment in --namespace, else the local
// controller of the local cluster the configuration points at.
func (f *portForwardFlags) find(ctx context.Context, app *App, cs kubernetes.Interface, cfg *rest.Config) (*consoleTarget, error) {
	d, err := cs.AppsV1().Deployments(f.namespace).Get(ctx, controllerDeployment, metav1.GetOptions{})
	if err == nil {
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == controller.ConsolePortName {
					return &consoleTarget{deploy: d, port: int(p.ContainerPort)}, nil
				}
			}
		}
		return nil, fmt.Errorf("the controller in namespace %s (Deployment %s) does not serve the console: it has no port %q; run 'berth bootstrap' again with this berth to update it (it adds --console-addr)", f.namespace, controllerDeployment, controller.ConsolePortName)
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("looking for the controller in namespace %s: %w", f.namespace, err)
	}
	lc := localClusterAt(app, cfg.Host)
	if lc == nil {
		return nil, fmt.Errorf("no berth controller in namespace %s (no Deployment %s): install it with 'berth bootstrap', or pass -n NAMESPACE", f.namespace, controllerDeployment)
	}
	addr := lc.ConsoleAddr()
	if addr == "" {
		return nil, fmt.Errorf("no berth controller in namespace %s, and the local cluster %q was created before its controller served a console: recreate it ('berth down --purge %s', 'berth up')", f.namespace, lc.Name, lc.Name)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/signin")
	if err != nil {
		return nil, fmt.Errorf("no berth controller in namespace %s, and the local cluster %q's controller does not answer at its console address %s: start it with 'berth bootstrap --local' (or 'berth quickstart')", f.namespace, lc.Name, addr)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return &consoleTarget{local: addr}, nil
}

// localClusterAt is the local cluster whose API server is host, or nil.
func localClusterAt(app *App, host string) *localcluster.Cluster {
	home, err := app.home()
	if err != nil {
		return nil
	}
	entries, err := os.ReadDir(filepath.Join(home, "clusters"))
	if err != nil {
		return nil
	}
	for _, e := range entries {
		c, err := localcluster.Open(home, e.Name())
		if err == nil && strings.TrimSuffix(c.APIServerURL(), "/") == strings.TrimSuffix(host, "/") {
			return c
		}
	}
	return nil
}

// readyPod is a ready pod of the Deployment, or an error saying why there
// is none.
func readyPod(ctx context.Context, cs kubernetes.Interface, d *appsv1.Deployment) (*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	pods, err := cs.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("listing the controller's pods in %s: %w", d.Namespace, err)
	}
	var states []string
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp == nil && podReady(p) {
			return p, nil
		}
		states = append(states, fmt.Sprintf("%s is %s and not ready", p.Name, p.Status.Phase))
	}
	if len(states) == 0 {
		return nil, fmt.Errorf("the controller (Deployment %s/%s) has no pod: 'kubectl -n %s describe deployment %s' says why", d.Namespace, d.Name, d.Namespace, d.Name)
	}
	return nil, fmt.Errorf("no pod of the controller (Deployment %s/%s) is ready (%s): 'kubectl -n %s describe pod' says why", d.Namespace, d.Name, strings.Join(states, "; "), d.Namespace)
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitReadyPod waits up to --reconnect-timeout for a ready pod of the
// controller.
func (f *portForwardFlags) waitReadyPod(ctx context.Context, cs kubernetes.Interface, d *appsv1.Deployment) (*corev1.Pod, error) {
	deadline := time.Now().Add(f.reconnect)
	for {
		p, err := readyPod(ctx, cs, d)
		if err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the controller's pod went away and none came back ready within %s: %w", f.reconnect, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// watchPod says why, once the pod is gone or no longer ready.
func watchPod(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) <-chan string {
	out := make(chan string, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			p, err := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err), err == nil && p.UID != pod.UID:
				out <- "is gone"
				return
			case err == nil && (p.DeletionTimestamp != nil || !podReady(p)):
				out <- "is no longer ready"
				return
			}
		}
	}()
	return out
}

// forwarder forwards host:local to the pod's port through the API server
// (SPDY).
func forwarder(cfg *rest.Config, cs kubernetes.Interface, pod *corev1.Pod, host string, local, remote int, stop, ready chan struct{}) (*portforward.PortForwarder, error) {
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	u := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	return portforward.NewOnAddresses(dialer, []string{host}, []string{fmt.Sprintf("%d:%d", local, remote)}, stop, ready, io.Discard, io.Discard)
}
