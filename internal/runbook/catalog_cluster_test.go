package runbook_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/runbook"
	"berth.dev/berth/internal/testcluster"
)

// installCatalogPostgres installs the built-in catalog's postgresql (the
// upstream chart, from the chart mirror) with values and deploys it.
func installCatalogPostgres(t *testing.T, values map[string]any) *fixture {
	t.Helper()
	ctx := context.Background()
	cfg := testcluster.Config(t)
	ws, _, err := lifecycle.Init(ctx, filepath.Join(t.TempDir(), "ws"), lifecycle.InitOptions{Home: t.TempDir(), Executable: testcluster.BerthBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	set := catalog.NewSet([]catalog.Ref{{Name: catalog.BuiltinName, Type: catalog.TypeBuiltin}}, map[string]catalog.Source{catalog.BuiltinName: catalog.Embedded()})
	env := &lifecycle.Env{WS: ws, Catalogs: set, Cluster: func() (*rest.Config, error) { return cfg, nil }}
	ns := testcluster.Namespace(t)
	if _, err := env.Install(ctx, lifecycle.InstallOptions{Package: "postgresql", Name: "pg", Namespace: ns, Values: values}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Deploy(ctx, lifecycle.DeployOptions{Apps: []string{"pg"}, Timeout: 3 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, cs: testcluster.Clientset(t), app: "pg", ns: ns}
}

// TestCatalogPostgresqlRunbooks runs the built-in postgresql package's own
// runbooks on the test cluster: resize-storage grows the claim from 8Gi to
// 16Gi (the same claim, the StatefulSet's template at 16Gi, healthy), backup
// then restore run their Jobs to completion, and a restore from a backup
// that does not exist is refused.
func TestCatalogPostgresqlRunbooks(t *testing.T) {
	f := installCatalogPostgres(t, map[string]any{"backup": true})
	ctx := context.Background()
	before, err := f.cs.CoreV1().PersistentVolumeClaims(f.ns).Get(ctx, "data-pg-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if q := before.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "8Gi" {
		t.Fatalf("claim is %s before, want 8Gi", q.String())
	}
	rec, err := runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: "resize-storage", Values: map[string]any{"size": "16Gi"}})
	if err != nil {
		t.Fatalf("resize: %v\nstate: %s\nnext: %s", err, rec.State, rec.Next)
	}
	if got := steps(rec); got != "config:Succeeded expandVolumes:Succeeded" {
		t.Errorf("resize steps %s", got)
	}
	after, err := f.cs.CoreV1().PersistentVolumeClaims(f.ns).Get(ctx, "data-pg-0", metav1.GetOptions{})
	if err != nil || after.UID != before.UID {
		t.Fatalf("claim after the resize: %v (uid %v, was %s)", err, after.UID, before.UID)
	}
	if q := after.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "16Gi" {
		t.Errorf("claim is %s, want 16Gi", q.String())
	}
	sts, err := f.cs.AppsV1().StatefulSets(f.ns).Get(ctx, "pg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range sts.Spec.VolumeClaimTemplates {
		if q := c.Spec.Resources.Requests[corev1.ResourceStorage]; c.Name == "data" && q.String() != "16Gi" {
			t.Errorf("statefulset claim template is %s, want 16Gi", q.String())
		}
	}
	f.healthy(t)

	rec, err = runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: "backup", Values: map[string]any{"name": "nightly"}})
	if err != nil {
		t.Fatalf("backup: %v (%s)", err, rec.State)
	}
	job, err := f.cs.BatchV1().Jobs(f.ns).Get(ctx, "pg-backup-nightly", metav1.GetOptions{})
	if err != nil || job.Status.Succeeded != 1 || job.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "pg-pgdumpall" {
		t.Fatalf("backup job: %+v, %v", job, err)
	}
	rec, err = runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: "restore", Values: map[string]any{"backup": "nightly"}})
	if err != nil {
		t.Fatalf("restore: %v (%s)", err, rec.State)
	}
	if got := steps(rec); got != "job:Succeeded" {
		t.Errorf("restore steps %s", got)
	}
	records, err := runbook.Records(f.env.WS, f.app)
	if err != nil || len(records) != 3 || records[1].Runbook != "backup" || records[2].Runbook != "restore" || records[2].Status != runbook.Succeeded {
		t.Errorf("records %+v, %v", records, err)
	}
	head := f.head(t)
	_, err = runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: "restore", Values: map[string]any{"backup": "lost"}})
	var ce *runbook.CheckError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "no completed backup called lost") {
		t.Fatalf("restore from a missing backup: %v", err)
	}
	if f.head(t) != head {
		t.Error("a refused restore committed")
	}
}

// TestCatalogPostgresqlBackupNeedsTheBackupClaim: without the package's
// backup setting there is no claim to dump to; the run is refused with the
// package's message and changes nothing.
func TestCatalogPostgresqlBackupNeedsTheBackupClaim(t *testing.T) {
	f := installCatalogPostgres(t, nil)
	head := f.head(t)
	_, err := runbook.Run(context.Background(), f.env, runbook.Options{App: f.app, Runbook: "backup"})
	var ce *runbook.CheckError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "set backup to true in the app's configuration") {
		t.Fatalf("backup without the backup claim: %v", err)
	}
	if f.head(t) != head {
		t.Error("a refused backup committed")
	}
}
