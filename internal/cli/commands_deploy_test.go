package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/testcluster"
	testcatalog "berth.dev/berth/test/catalog"
)

// TestMain runs the tests against the fixture catalog (test/catalog) as the
// built-in one; tests of the real built-in catalog open it with catalog.Embedded.
func TestMain(m *testing.M) {
	testcatalog.Use()
	os.Exit(testcluster.Main(m))
}

// kubeconfig writes a kubeconfig file for the test cluster.
func kubeconfig(t *testing.T) string {
	t.Helper()
	cfg := testcluster.Config(t)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthority: cfg.CAFile, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{
		ClientCertificate: cfg.CertFile, ClientCertificateData: cfg.CertData,
		ClientKey: cfg.KeyFile, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken,
	}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// run runs a berth command line in-process.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Execute(context.Background(), &App{Out: &out, Err: &errb, Home: t.TempDir()}, args)
	return out.String(), errb.String(), code
}

func writeManifest(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestApplyPlanDeleteCommandLines(t *testing.T) {
	ns := testcluster.Namespace(t)
	kc := kubeconfig(t)
	dir := t.TempDir()
	writeManifest(t, dir, "app.yaml", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
`)
	common := []string{"--app", "web", "-n", ns, "--kubeconfig", kc}

	out, errOut, code := run(t, append([]string{"apply", "-f", dir, "--wait", "--timeout", "1m"}, common...)...)
	if code != 0 {
		t.Fatalf("apply exited %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"created   deployment/web", "created   configmap/settings", "2 created"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "deployment/web (namespace "+ns+") ready: 1/1 available") {
		t.Errorf("apply --wait did not report the deployment ready on stderr:\n%s", errOut)
	}

	out, _, code = run(t, append([]string{"apply", "-f", dir}, common...)...)
	if code != 0 || !strings.Contains(out, "2 unchanged") {
		t.Errorf("second apply exited %d, want 0 and 2 unchanged:\n%s", code, out)
	}

	writeManifest(t, dir, "app.yaml", strings.Replace(readFile(t, filepath.Join(dir, "app.yaml")), "mode: fast", "mode: slow", 1))
	out, _, code = run(t, append([]string{"plan", "-f", dir, "-o", "json"}, common...)...)
	if code != 0 {
		t.Fatalf("plan exited %d:\n%s", code, out)
	}
	var plan apply.Result
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("plan -o json is not JSON: %v\n%s", err, out)
	}
	got := map[string]apply.Action{}
	for _, c := range plan.Changes {
		got[c.Object.ShortString()] = c.Action
		if c.Object.Name == "settings" && !strings.Contains(c.Diff, "+  mode: slow") {
			t.Errorf("plan diff of configmap/settings lacks the new value:\n%s", c.Diff)
		}
	}
	if diff := cmp.Diff(map[string]apply.Action{"deployment/web": apply.ActionUnchanged, "configmap/settings": apply.ActionUpdate}, got); diff != "" {
		t.Errorf("plan actions (-want +got):\n%s", diff)
	}

	out, _, code = run(t, append([]string{"apply", "-f", dir, "--dry-run"}, common...)...)
	if code != 0 || !strings.Contains(out, "~ update configmap/settings") {
		t.Errorf("apply --dry-run exited %d, want the plan:\n%s", code, out)
	}
	cm, err := testcluster.Clientset(t).CoreV1().ConfigMaps(ns).Get(context.Background(), "settings", metav1.GetOptions{})
	if err != nil || cm.Data["mode"] != "fast" {
		t.Errorf("apply --dry-run changed the cluster: %v %v", cm.Data, err)
	}

	out, errOut, code = run(t, append([]string{"delete", "--wait"}, common...)...)
	if code != 0 || !strings.Contains(out, "deleted   deployment/web") {
		t.Errorf("delete exited %d:\n%s%s", code, out, errOut)
	}
}

func TestApplyCommandFailsPerObjectAndExplains(t *testing.T) {
	ns := testcluster.Namespace(t)
	kc := kubeconfig(t)
	dir := t.TempDir()
	writeManifest(t, dir, "app.yaml", `
apiVersion: v1
kind: ConfigMap
metadata: {name: fine}
---
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  ports: [{port: 99999}]
`)
	out, errOut, code := run(t, "apply", "--app", "bad", "-n", ns, "--kubeconfig", kc, "-f", dir)
	if code == 0 {
		t.Fatalf("apply with an invalid object exited 0:\n%s", out)
	}
	if !strings.Contains(out, "created   configmap/fine") || !strings.Contains(out, "failed    service/bad") || !strings.Contains(out, "spec.ports[0].port") {
		t.Errorf("apply output should list the applied object and the failure with the API server's message:\n%s", out)
	}
	if !strings.Contains(errOut, "1 object(s) failed") {
		t.Errorf("stderr = %q", errOut)
	}

	tests := map[string]struct {
		args []string
		want string
	}{
		"no app":          {[]string{"apply", "-f", dir, "--kubeconfig", kc}, `required flag(s) "app" not set`},
		"no manifests":    {[]string{"apply", "--app", "x", "--kubeconfig", kc}, "no manifests: pass -f"},
		"bad app name":    {[]string{"apply", "--app", "Bad_Name", "-f", dir, "--kubeconfig", kc}, `app name "Bad_Name" is not valid`},
		"missing file":    {[]string{"apply", "--app", "x", "-f", filepath.Join(dir, "nope.yaml"), "--kubeconfig", kc}, "nope.yaml: no such file"},
		"unreachable":     {[]string{"apply", "--app", "x", "-f", dir, "--kubeconfig", unreachable(t)}, "cannot reach the API server at https://127.0.0.1:1"},
		"delete no app":   {[]string{"delete", "--app", "never-applied", "-n", ns, "--kubeconfig", kc}, "has no inventory in namespace " + ns},
		"bad output flag": {[]string{"plan", "--app", "x", "-f", dir, "-o", "yaml"}, "unknown output format"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, errOut, code := run(t, tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want non-zero and %q", code, errOut, tc.want)
			}
		})
	}
}

func unreachable(t *testing.T) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["x"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1", InsecureSkipTLSVerify: true}
	kc.AuthInfos["x"] = &clientcmdapi.AuthInfo{Token: "x"}
	kc.Contexts["x"] = &clientcmdapi.Context{Cluster: "x", AuthInfo: "x"}
	kc.CurrentContext = "x"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
