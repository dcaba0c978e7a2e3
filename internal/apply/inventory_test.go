package apply

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/testcluster"
)

func TestInventoryEncoding(t *testing.T) {
	tests := map[string]struct {
		objects int
		wantKey string
	}{
		"small, readable": {objects: 10, wantKey: inventoryKey},
		"large, gzipped":  {objects: 30000, wantKey: inventoryGzKey},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			inv := Inventory{App: "web"}
			for i := 0; i < tc.objects; i++ {
				inv.Entries = append(inv.Entries, Entry{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "web", Name: fmt.Sprintf("web-%d", i),
					Desired: "0123456789abcdef0123456789abcdef", Fields: "fedcba9876543210fedcba9876543210"})
			}
			data, err := encodeInventory(inv)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := data[tc.wantKey]; !ok || len(data) != 1 {
				t.Fatalf("encoded under keys %v, want only %s", keys(data), tc.wantKey)
			}
			size := len(data[tc.wantKey])
			if size > 1<<20-4096 {
				t.Errorf("%d objects encode to %d bytes: more than a Secret holds", tc.objects, size)
			}
			got, err := decodeInventory(data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(inv, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := decodeInventory(map[string][]byte{"other": nil}); err == nil {
		t.Error("decoding a Secret without an inventory key succeeded")
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The final inventory is written while the health wait runs, not before it:
// the write of the inventory is held until the wait has read the app's
// Deployment, which only a wait running beside the write can do.
func TestTheFinalInventoryIsWrittenWhileTheAppIsWaitedFor(t *testing.T) {
	ns := testcluster.Namespace(t)
	cfg := testcluster.Config(t)
	var (
		mu       sync.Mutex
		writing  bool // the final inventory's PUT is held
		waitRead = make(chan struct{})
		once     sync.Once
	)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			path := r.URL.Path
			switch {
			case r.Method == http.MethodPut && strings.HasSuffix(path, "/secrets/"+InventoryName("web")):
				mu.Lock()
				writing = true
				mu.Unlock()
				select {
				case <-waitRead:
				case <-time.After(30 * time.Second):
					// Not seen: the wait did not run beside the write. Let
					// the write go so that the test fails on its assertion.
				}
				resp, err := rt.RoundTrip(r)
				mu.Lock()
				writing = false
				mu.Unlock()
				return resp, err
			case r.Method == http.MethodGet && strings.Contains(path, "/deployments"):
				mu.Lock()
				if writing {
					once.Do(func() { close(waitRead) })
				}
				mu.Unlock()
			}
			return rt.RoundTrip(r)
		})
	}
	e, err := NewEngine(cfg, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	objs := objects(t, ns, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: "%[1]s"}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
`)
	opts := applyOpts("web", ns)
	opts.Wait = true
	res := mustApply(t, e, objs, opts)
	select {
	case <-waitRead:
	default:
		t.Fatal("the health wait read nothing while the final inventory was being written: the write and the wait ran one after the other")
	}
	if res.Inventory == nil || len(res.Inventory.Entries) != 1 || res.Inventory.Entries[0].Fields == "" {
		t.Fatalf("the result's inventory = %+v, want the Deployment with its hashes", res.Inventory)
	}
	stored, err := e.loadInventory(context.Background(), "web", ns)
	if err != nil || !stored.exists || stored.byKey[res.Inventory.Entries[0].Ref().key()] != res.Inventory.Entries[0] {
		t.Fatalf("the stored inventory = %+v, %v; want what the result reports", stored, err)
	}
}
