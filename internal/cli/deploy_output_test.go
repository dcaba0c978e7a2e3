package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/apply"
)

func sampleResult() *apply.Result {
	cm := apply.ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: "web", Name: "settings"}
	return &apply.Result{App: "web", Namespace: "web", Duration: 1234 * time.Millisecond, Changes: []apply.Change{
		{Object: cm, Action: apply.ActionUpdate, Reason: "manifest changed", Diff: "--- live\n+++ after apply\n@@ -1,2 +1,2 @@\n data:\n-  mode: fast\n+  mode: slow\n"},
		{Object: apply.ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "web", Name: "web"}, Action: apply.ActionUnchanged},
		{Object: apply.ObjectRef{Version: "v1", Kind: "Service", Namespace: "web", Name: "web"}, Action: apply.ActionCreate, Health: "Current"},
		{Object: apply.ObjectRef{Version: "v1", Kind: "PersistentVolumeClaim", Namespace: "web", Name: "data"}, Action: apply.ActionKeep, Reason: "a PersistentVolumeClaim keeps data"},
		{Object: apply.ObjectRef{Version: "v1", Kind: "Service", Namespace: "web", Name: "bad"}, Action: apply.ActionFail, Error: "service/bad (namespace web): rejected by the API server"},
	}}
}

func TestDeployOutput(t *testing.T) {
	tests := map[string]struct {
		print func(b *bytes.Buffer)
		want  string
	}{
		"apply result": {
			print: func(b *bytes.Buffer) { printResult(b, sampleResult(), "Applied") },
			want: `updated   configmap/settings (namespace web): manifest changed
created   service/web (namespace web) [Current]
kept      persistentvolumeclaim/data (namespace web): a PersistentVolumeClaim keeps data
failed    service/bad (namespace web): rejected by the API server
Applied app web (namespace web) in 1.2s: 1 created, 1 updated, 1 unchanged, 1 kept, 1 failed
`,
		},
		"plan": {
			print: func(b *bytes.Buffer) { printPlan(b, sampleResult()) },
			want: `~ update configmap/settings (namespace web): manifest changed
    --- live
    +++ after apply
    @@ -1,2 +1,2 @@
     data:
    -  mode: fast
    +  mode: slow
+ create service/web (namespace web)
= keep persistentvolumeclaim/data (namespace web): a PersistentVolumeClaim keeps data
! fail service/bad (namespace web): rejected by the API server
Plan for app web (namespace web): 1 to create, 1 to update, 0 to delete, 1 unchanged, 1 kept, 1 failing.
`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			tc.print(&b)
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}
