package render

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkRenderKubePrometheusStack renders the largest chart of the mirror
// as berth template does; bench/render.sh compares it with helm template.
func BenchmarkRenderKubePrometheusStack(b *testing.B) {
	c := mirrorChart{name: "kube-prometheus-stack", version: "80.14.4",
		archive: filepath.Join(mirror, "prometheus-community.github.io/helm-charts/kube-prometheus-stack-80.14.4.tgz")}
	archive, err := os.ReadFile(c.archive)
	if err != nil {
		b.Fatal(err)
	}
	c.digest = "sha256:" + digestHex(archive)
	b.ResetTimer()
	for b.Loop() {
		renderMirrorChart(b, c, archive, "", testSeed)
	}
}

// BenchmarkHelmTemplateKubePrometheusStack runs the helm command line (built
// at go.mod's version into the user cache) on the same chart, with the
// same release, namespace, Kubernetes version and CRDs: the reference
// BenchmarkRenderKubePrometheusStack is held to (berth within 1.5x).
func BenchmarkHelmTemplateKubePrometheusStack(b *testing.B) {
	helm := helmCLI(b)
	archive := filepath.Join(mirror, "prometheus-community.github.io/helm-charts/kube-prometheus-stack-80.14.4.tgz")
	for b.Loop() {
		cmd := exec.Command(helm, "template", "rel", archive, "--namespace", "ns", "--kube-version", DefaultKubeVersion, "--include-crds")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("helm template: %v\n%s", err, out)
		}
	}
}
