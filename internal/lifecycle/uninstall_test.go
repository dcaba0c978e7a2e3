package lifecycle

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/testcluster"
)

// TestUninstallKeepsDataAndAReinstallGetsTheSameCredentials: uninstall keeps the
// claims and the app's secrets (encrypted in the workspace); installing the app
// again under the same name and namespace renders the same password, so the
// kept data stays usable. --delete-data deletes both.
func TestUninstallKeepsDataAndAReinstallGetsTheSameCredentials(t *testing.T) {
	ctx := context.Background()
	cfg := testcluster.Config(t)
	cs := testcluster.Clientset(t)
	env := newEnv(t, cfg)
	name := testcluster.UniqueName(t, 20)
	ns := name
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1DeleteOptions) })

	password := func() []byte {
		t.Helper()
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading the database's secret: %v", err)
		}
		if len(s.Data["password"]) < 16 {
			t.Fatalf("secret %s/%s has no generated password: keys %v", ns, name, slices.Collect(maps.Keys(s.Data)))
		}
		return s.Data["password"]
	}
	deploy := func() {
		t.Helper()
		if _, err := env.Deploy(ctx, DeployOptions{Apps: []string{name}, Timeout: 3 * time.Minute}); err != nil {
			t.Fatalf("deploy: %v", err)
		}
	}
	claims := func() []string {
		t.Helper()
		list, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range list.Items {
			out = append(out, ns+"/"+c.Name)
		}
		return out
	}

	if _, err := env.Install(ctx, InstallOptions{Package: "postgresql", Name: name, Namespace: ns}); err != nil {
		t.Fatal(err)
	}
	deploy()
	first := password()
	testcluster.WaitFor(t, time.Minute, func(ctx context.Context) (bool, string, error) {
		return len(claims()) > 0, "the statefulset has created no claim", nil
	})
	before := claims()

	res, err := env.Uninstall(ctx, UninstallOptions{App: name, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.KeptClaims, before) {
		t.Errorf("uninstall says it kept %v, want the claims %v", res.KeptClaims, before)
	}
	if got := claims(); !slices.Equal(got, before) {
		t.Errorf("claims after uninstall: %v, want %v kept", got, before)
	}
	kept := retainedPath(ns, name)
	if !slices.Equal(res.KeptSecrets, []string{kept}) {
		t.Errorf("kept secrets %v, want %s", res.KeptSecrets, kept)
	}
	if _, err := os.Stat(filepath.Join(env.WS.Root, "apps", name)); !os.IsNotExist(err) {
		t.Errorf("apps/%s is still in the workspace: %v", name, err)
	}
	blob := git(t, env.WS.Root, "cat-file", "-p", "HEAD:"+kept)
	if !secrets.IsEncrypted([]byte(blob)) {
		t.Errorf("%s is committed in plaintext", kept)
	}
	if _, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		t.Error("the app's Secret is still in the cluster after uninstall")
	}
	// The namespace holding the kept claims is kept, handed over with them.
	nsObj, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil || nsObj.DeletionTimestamp != nil {
		t.Fatalf("the namespace holding the kept claims is gone: %v", err)
	}
	if nsObj.Labels[render.LabelApp] != "" || nsObj.Labels[LabelKeptFrom] != name {
		t.Errorf("kept namespace labels %v, want %s=%s and no app label", nsObj.Labels, LabelKeptFrom, name)
	}

	if _, err := env.Install(ctx, InstallOptions{Package: "postgresql", Name: name, Namespace: ns}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(env.WS.Root, kept)); !os.IsNotExist(err) {
		t.Errorf("the reinstall left %s behind: %v", kept, err)
	}
	deploy()
	if second := password(); !bytes.Equal(first, second) {
		t.Error("the reinstalled database got a new password for the kept data")
	}
	leaks, err := secrets.ScanObjects(ctx, env.WS.Root, [][]byte{first})
	if err != nil {
		t.Fatal(err)
	}
	if len(leaks) > 0 {
		t.Errorf("the password is in plaintext in git objects: %+v", leaks)
	}
	if hist, err := secrets.PlaintextInHistory(ctx, env.WS.Root); err != nil || len(hist) > 0 {
		t.Errorf("secret files in plaintext in history: %+v, %v", hist, err)
	}

	// --delete-data deletes the claims (the one adopted too) and the kept secrets.
	res, err = env.Uninstall(ctx, UninstallOptions{App: name, DeleteData: true, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KeptClaims) > 0 || len(res.KeptSecrets) > 0 || !slices.Equal(res.DeletedClaims, before) {
		t.Errorf("uninstall --delete-data = %+v, want the claims %v deleted and nothing kept", res, before)
	}
	if _, err := os.Stat(filepath.Join(env.WS.Root, kept)); !os.IsNotExist(err) {
		t.Errorf("uninstall --delete-data left %s: %v", kept, err)
	}
	testcluster.WaitFor(t, time.Minute, func(ctx context.Context) (bool, string, error) {
		list, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelKeptFrom + "=" + name})
		if err != nil {
			return false, "", err
		}
		live := 0
		for _, c := range list.Items {
			if c.DeletionTimestamp == nil {
				live++
			}
		}
		return live == 0, fmt.Sprintf("%d claims left after --delete-data", live), nil
	})
	// Nothing holds the namespace any more: it goes with the app.
	testcluster.WaitFor(t, time.Minute, func(ctx context.Context) (bool, string, error) {
		n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, "", err
		}
		return n.DeletionTimestamp != nil, "namespace " + ns + " is not being deleted after --delete-data", nil
	})
}
