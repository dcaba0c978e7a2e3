package cli

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/console"
	"berth.dev/berth/internal/controller"
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
