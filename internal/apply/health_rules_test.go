package apply

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"berth.dev/berth/internal/testcluster"
)

func TestWaitHonoursThePackageHealthRule(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	ctx := context.Background()
	applyCRDFixture(t, e, "testdata/certificate-with-health-rule.yaml", "certificates.health.test.berth.dev", applyOpts("certs", ns))
	ref := ObjectRef{Group: "health.test.berth.dev", Version: "v1", Kind: "Certificate", Namespace: ns, Name: "web"}

	_, err := e.Wait(ctx, []ObjectRef{ref}, WaitOptions{Timeout: time.Second})
	var nr *NotReadyError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "waiting for condition Ready=True") {
		t.Fatalf("wait on a certificate without conditions: err = %v, want not ready, waiting for condition Ready=True", err)
	}

	certs := dynClient(t).Resource(schema.GroupVersionResource{Group: "health.test.berth.dev", Version: "v1", Resource: "certificates"}).Namespace(ns)
	setReady := func() {
		c, err := certs.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		_ = unstructured.SetNestedSlice(c.Object, []any{map[string]any{"type": "Ready", "status": "True", "reason": "Issued"}}, "status", "conditions")
		if _, err := certs.UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	}
	var once sync.Once
	var mu sync.Mutex
	var seen []string
	_, err = e.Wait(ctx, []ObjectRef{ref}, WaitOptions{Timeout: testTimeout, Events: func(ev Event) {
		mu.Lock()
		seen = append(seen, string(ev.Type)+" "+ev.Message)
		mu.Unlock()
		if ev.Type == EventWaiting {
			once.Do(func() { go setReady() })
		}
	}})
	if err != nil {
		t.Fatalf("wait on a certificate that becomes Ready: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || !strings.Contains(seen[0], "waiting for condition Ready=True") {
		t.Errorf("events = %q; want a wait for Ready=True before it became ready", seen)
	}
}
