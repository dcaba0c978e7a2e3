package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/console"
	"berth.dev/berth/internal/controller"
	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/testcluster"
)

// 'berth console --port-forward' without a controller to reach says why and
// what to do, exits non-zero, and leaves no sign-in Secret behind.
func TestConsolePortForwardWithoutAControllerToReach(t *testing.T) {
	kc := kubeconfig(t)
	tests := map[string]struct {
		replicas int32
		ports    []corev1.ContainerPort
		noDeploy bool
		want     string
	}{
		"no controller": {noDeploy: true, want: "no berth controller in namespace"},
		"a controller without the console": {replicas: 1, ports: []corev1.ContainerPort{{Name: "webhook", ContainerPort: 9292}},
			want: `does not serve the console: it has no port "console"; run 'berth bootstrap' again`},
		"no pod": {replicas: 0, ports: []corev1.ContainerPort{{Name: controller.ConsolePortName, ContainerPort: controller.ConsolePort}},
			want: "has no pod"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ns := testcluster.Namespace(t)
			cs := testcluster.Clientset(t)
			if !tt.noDeploy {
				labels := map[string]string{"app.kubernetes.io/name": "berth-controller"}
				d := &appsv1.Deployment{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: controllerDeployment},
					Spec: appsv1.DeploymentSpec{Replicas: &tt.replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
						Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
							Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "controller", Image: "berth:test", Ports: tt.ports}}}}},
				}
				if _, err := cs.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			stdout, stderr, code := run(t, "console", "--port-forward", "--kubeconfig", kc, "-n", ns, "-C", t.TempDir())
			if code == 0 || !strings.Contains(stderr, tt.want) || strings.Contains(stdout, "signin?token=") {
				t.Errorf("exit %d, stdout %q, stderr %q; want an error saying %q", code, stdout, stderr, tt.want)
			}
			list, err := cs.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: console.LabelSignIn + "=true"})
			if err != nil || len(list.Items) != 0 {
				t.Errorf("sign-in Secrets left: %v %v", list, err)
			}
		})
	}
}

// For the controller a local cluster runs as a process (no pod), 'berth
// console --port-forward' prints the link to the console address the local
// cluster records, mints the sign-in in the controller's namespace, and
// deletes it at Ctrl-C; a controller that does not answer there is an error
// saying how to start it.
func TestConsolePortForwardToTheLocalController(t *testing.T) {
	kc := kubeconfig(t)
	ns := testcluster.Namespace(t)
	cs := testcluster.Clientset(t)
	// A local cluster's recorded state whose API server is the test
	// cluster's, and whose console address is this test's server.
	shared := filepath.Dir(testcluster.Kubeconfig(t))
	data, err := os.ReadFile(filepath.Join(shared, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var state localcluster.State
	if err := json.Unmarshal(data, &state); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "sign in") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	state.Ports.Console, _ = strconv.Atoi(port)
	state.Name = "local"
	home := t.TempDir()
	dir := filepath.Join(home, "clusters", "local")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ = json.Marshal(state)
	if err := os.WriteFile(filepath.Join(dir, "cluster.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	signIns := func() int {
		list, err := cs.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: console.LabelSignIn + "=true"})
		if err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Execute(ctx, &App{Out: &out, Err: &errb, Home: home}, []string{"console", "--port-forward", "--kubeconfig", kc, "-n", ns, "-C", t.TempDir()})
	}()
	want := "http://" + srv.Listener.Addr().String() + "/signin?token="
	testcluster.WaitFor(t, time.Minute, func(context.Context) (bool, string, error) {
		select {
		case code := <-done:
			return false, "", fmt.Errorf("exited %d: %s %s", code, out.String(), errb.String())
		default:
		}
		return strings.Contains(out.String(), want), out.String() + errb.String(), nil
	})
	if n := signIns(); n != 1 {
		t.Errorf("%d sign-in Secrets in %s, want 1", n, ns)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after Ctrl-C: %s", code, errb.String())
	}
	if n := signIns(); n != 0 {
		t.Errorf("%d sign-in Secrets left after Ctrl-C, want 0", n)
	}

	srv.Close()
	app := &App{Out: &out, Err: &errb, Home: home}
	var errb2 syncBuffer
	app.Err = &errb2
	code := Execute(context.Background(), app, []string{"console", "--port-forward", "--kubeconfig", kc, "-n", ns, "-C", t.TempDir()})
	if code == 0 || !strings.Contains(errb2.String(), "does not answer at its console address") || !strings.Contains(errb2.String(), "berth bootstrap --local") {
		t.Errorf("with the local controller down: exit %d, %s", code, errb2.String())
	}
}
