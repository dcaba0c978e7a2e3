package render

import (
	"os"
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
