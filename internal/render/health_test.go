package render

import (
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/health"
	"berth.dev/berth/internal/pkgspec"
)

func TestRenderStampsPackageHealthRules(t *testing.T) {
	files := fstest.MapFS{
		"package.yaml": {Data: []byte(`apiVersion: berth.dev/v1alpha1
kind: Package
name: certs
version: 1.0.0
description: Certificates.
manifests: [certs.yaml]
health:
  - {apiVersion: cert-manager.io/v1, kind: Certificate, condition: Ready}
  - {apiVersion: cert-manager.io/v1, kind: Certificate, condition: Degraded, status: "False"}
  - {apiVersion: cert-manager.io/v1, kind: Issuer, condition: Ready}
`)},
		"certs.yaml": {Data: []byte(`apiVersion: cert-manager.io/v1beta1
kind: Certificate
metadata: {name: web, annotations: {keep: me}}
---
apiVersion: example.com/v1
kind: Certificate
metadata: {name: other}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: plain}
`)},
	}
	p, err := pkgspec.Load(files, ".", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := p.Configure(pkgspec.ConfigureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Render(Input{Package: p, Files: files, App: "certs", Namespace: "apps", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]string{}
	for _, o := range res.Objects {
		got[o.Object.GetAPIVersion()+" "+o.ID()] = o.Object.GetAnnotations()
	}
	want := map[string]map[string]string{
		// Matched by group and kind, whatever the version.
		"cert-manager.io/v1beta1 Certificate/apps/web": {"keep": "me", health.AnnotationCondition: "Ready=True,Degraded=False"},
		// Same kind, other group: not the rule's.
		"example.com/v1 Certificate/apps/other": nil,
		"v1 ConfigMap/apps/plain":               nil,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
}
