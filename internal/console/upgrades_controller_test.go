package console

import (
	"context"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	crclient "sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/testcluster"
)

// followed creates a Workspace following the fixture's repository (what
// bootstrap leaves for the controller; no controller runs), lets status set
// its status, and returns a client of berth's API.
func (f *fixture) followed(t *testing.T, status func(*berthv1.Workspace)) (crclient.Client, crclient.ObjectKey) {
	t.Helper()
	installWorkspaceCRD(t)
	scheme := runtime.NewScheme()
	if err := berthv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	kc, err := crclient.New(f.cfg, crclient.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	key := crclient.ObjectKey{Name: "workspace", Namespace: testcluster.Namespace(t)}
	ws := &berthv1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}, Spec: berthv1.WorkspaceSpec{URL: "file://" + f.env.WS.Root, Branch: f.git("branch", "--show-current")}}
	ctx := context.Background()
	if err := kc.Create(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if status != nil {
		status(ws)
		if err := kc.Status().Update(ctx, ws); err != nil {
			t.Fatal(err)
		}
	}
	return kc, key
}

func TestUpgradesShowTheControllersProposals(t *testing.T) {
	var app string
	f := newFixtureWith(t, func(f *fixture) {
		app = f.app
		f.followed(t, func(ws *berthv1.Workspace) {
			ws.Status.Upgrades = &berthv1.UpgradesStatus{
				Available: []berthv1.AvailableUpgrade{{App: f.app, Package: "webapp", From: "1.0.0", To: "2.0.0", Channel: "stable", Policy: "approve", Breaking: true, State: "proposed"}},
				Proposals: []berthv1.UpgradeProposal{{App: f.app, Package: "webapp", From: "1.0.0", To: "2.0.0", Channel: "stable", Breaking: true,
					BreakingReason: "major version 2: the settings ConfigMap is renamed", ReleaseNotes: "2.0.0: <b>new</b> greeting page",
					Branch: "berth/upgrade/" + f.app + "/2.0.0", Commit: "0123456789abcdef", Base: "fedcba9876543210", Plan: berthv1.UpgradePlan{Created: 2, Changed: 1}}},
				Conditions: []metav1.Condition{{Type: berthv1.ConditionGitWritable, Status: metav1.ConditionFalse, Reason: berthv1.ReasonNoCredential, Message: "no credential to push with", LastTransitionTime: metav1.Now()}},
			}
		})
	})
	viewer := newClient(t, f.url)
	viewer.signInOIDC(f.issuer, viewerUser)
	status, page := viewer.get("/upgrades")
	if status != http.StatusOK {
		t.Fatalf("GET /upgrades = %d", status)
	}
	for _, want := range []string{
		`data-upgrade="` + app + `/2.0.0"`,
		"major version 2: the settings ConfigMap is renamed",
		"2.0.0: &lt;b&gt;new&lt;/b&gt; greeting page",
		"2 created, 1 changed, 0 deleted",
		"berth/upgrade/" + app + "/2.0.0",
		"GitWritable: no credential to push with",
		// The status names a branch that is not in the repository.
		"There is no branch berth/upgrade/" + app + "/2.0.0 in this repository, so there is no diff to show",
		"As the berth controller sees it",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the upgrades page lacks %q", want)
		}
	}
	if strings.Contains(page, `class="primary approve"`) || strings.Contains(page, `class="reject"`) {
		t.Errorf("a viewer is offered approve or reject")
	}
	operator := newClient(t, f.url)
	operator.signInOIDC(f.issuer, operatorUser)
	if _, page := operator.get("/upgrades"); !strings.Contains(page, `aria-label="Approve `+app+` 2.0.0"`) || !strings.Contains(page, `aria-label="Reject `+app+` 2.0.0"`) {
		t.Errorf("an operator is not offered approve and reject of the proposal")
	}
}
