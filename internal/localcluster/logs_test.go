package localcluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/testcluster"
)

// TestPodLogsAreServedThroughTheAPIServer reads a simulated pod's log through
// the API server's pods/log, which proxies to kwok's kubelet server.
func TestPodLogsAreServedThroughTheAPIServer(t *testing.T) {
	cs := testcluster.Clientset(t)
	ns := testcluster.Namespace(t)
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "talker", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, time.Minute, func(ctx context.Context) (bool, string, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "talker", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		return p.Status.Phase == corev1.PodRunning, string(p.Status.Phase), nil
	})
	for _, previous := range []bool{false, true} {
		data, err := cs.CoreV1().Pods(ns).GetLogs("talker", &corev1.PodLogOptions{Container: "main", Previous: previous}).DoRaw(ctx)
		if err != nil {
			t.Fatalf("reading logs (previous=%v): %v", previous, err)
		}
		if got := string(data); !strings.Contains(got, "ready\n") || !strings.HasPrefix(got, "starting") {
			t.Errorf("logs (previous=%v) = %q, want the simulated lines", previous, got)
		}
	}
}
