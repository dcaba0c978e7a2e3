package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/secrets"
)

func TestBootstrapManifests(t *testing.T) {
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile, err := key.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		mutate  func(*BootstrapOptions)
		kinds   []string
		wsRefs  []string // secretRef, decryptionRef, webhookSecretRef names ("" when unset)
		wantErr string
	}{
		"in cluster, with a token and a key": {
			mutate: func(o *BootstrapOptions) { o.Password, o.Key = "tok", keyFile },
			kinds: []string{"CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition", "Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRole", "ClusterRoleBinding",
				"Deployment", "Service", "Secret", "Secret", "Secret", "Workspace"},
			wsRefs: []string{gitSecretName, keySecretName, webhookSecretName},
		},
		"local, public repository": {
			mutate: func(o *BootstrapOptions) { o.Local = true },
			kinds:  []string{"CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition", "Namespace", "Secret", "Workspace"},
			wsRefs: []string{"", "", webhookSecretName},
		},
		"not a key": {
			mutate:  func(o *BootstrapOptions) { o.Key = []byte("nope") },
			wantErr: "--key: not a git-crypt key file",
		},
		"no repository": {
			mutate:  func(o *BootstrapOptions) { o.Workspace.URL = "" },
			wantErr: "pass --repo URL",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			o := DefaultBootstrapOptions()
			o.Workspace.URL = "https://git.example.com/acme/platform.git"
			o.Image = "berth:test"
			tt.mutate(&o)
			objs, err := BootstrapManifests(o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			var ws *unstructured.Unstructured
			for _, obj := range objs {
				kinds = append(kinds, obj.GetKind())
				if obj.GetKind() != "CustomResourceDefinition" && obj.GetKind() != "Namespace" && obj.GetKind() != "ClusterRole" && obj.GetKind() != "ClusterRoleBinding" && obj.GetNamespace() != "berth-system" {
					t.Errorf("%s/%s in namespace %q", obj.GetKind(), obj.GetName(), obj.GetNamespace())
				}
				if obj.GetKind() == "Deployment" {
					cs, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
					if img := cs[0].(map[string]any)["image"]; img != "berth:test" {
						t.Errorf("image = %v", img)
					}
					// Metrics and pprof only for authorised tokens.
					args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
					if !slices.Contains(args, "--metrics-secure") {
						t.Errorf("controller args %v lack --metrics-secure", args)
					}
					// The console, on the named port 'berth console
					// --port-forward' connects to.
					if !slices.Contains(args, fmt.Sprintf("--console-addr=:%d", ConsolePort)) {
						t.Errorf("controller args %v do not serve the console on %d", args, ConsolePort)
					}
					ports, _, _ := unstructured.NestedSlice(cs[0].(map[string]any), "ports")
					if !slices.ContainsFunc(ports, func(p any) bool {
						m := p.(map[string]any)
						return m["name"] == ConsolePortName && fmt.Sprint(m["containerPort"]) == fmt.Sprint(ConsolePort)
					}) {
						t.Errorf("controller ports %v lack %s: %d", ports, ConsolePortName, ConsolePort)
					}
				}
				if obj.GetKind() == "Workspace" {
					ws = obj
				}
			}
			if diff := cmp.Diff(tt.kinds, kinds); diff != "" {
				t.Errorf("kinds (-want +got):\n%s", diff)
			}
			var refs []string
			for _, f := range []string{"secretRef", "decryptionRef", "webhookSecretRef"} {
				n, _, _ := unstructured.NestedString(ws.Object, "spec", f, "name")
				refs = append(refs, n)
			}
			if diff := cmp.Diff(tt.wsRefs, refs); diff != "" {
				t.Errorf("Workspace secret references (-want +got):\n%s", diff)
			}
		})
	}
}
