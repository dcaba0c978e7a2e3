package apply

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
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
