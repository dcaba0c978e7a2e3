package apply

import (
	"context"
	"testing"

	"berth.dev/berth/internal/testcluster"
)

func TestApplyRecordsTheRevisionOnTheInventory(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	ctx := context.Background()
	revision := func() string {
		t.Helper()
		r, err := e.Revision(ctx, "rev", ns)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := e.Inventory(ctx, "rev", ns)
		if err != nil {
			t.Fatal(err)
		}
		if inv.Revision != r {
			t.Errorf("Inventory().Revision = %q, Revision() = %q", inv.Revision, r)
		}
		return r
	}
	good := objects(t, ns, configMaps(2, "c", "v"))
	opts := applyOpts("rev", ns)

	opts.Revision = "1111111"
	mustApply(t, e, good, opts)
	if got := revision(); got != "1111111" {
		t.Errorf("after applying 1111111: revision %q", got)
	}

	// Nothing changes in the cluster, but the revision applied is newer.
	opts.Revision = "2222222"
	mustApply(t, e, good, opts)
	if got := revision(); got != "2222222" {
		t.Errorf("after an unchanged apply of 2222222: revision %q", got)
	}

	// An apply in which an object fails has not applied its revision.
	bad := append(good, objects(t, ns, "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: 99999}]}")...)
	opts.Revision = "3333333"
	if _, err := e.Apply(ctx, bad, opts); err == nil {
		t.Fatal("apply of an invalid Service: no error")
	}
	if got := revision(); got != "2222222" {
		t.Errorf("after a failed apply of 3333333: revision %q, want the last complete one, 2222222", got)
	}
}
