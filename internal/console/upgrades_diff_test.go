package console

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/upgrades"
)

// addWebappVersion writes webapp version to the fixture catalog's copy:
// 1.1.0 with the version replaced, and a Secret holding token.
func (f *fixture) addWebappVersion(t *testing.T, version, token string) {
	t.Helper()
	dst := filepath.Join(f.catalog, "webapp", version)
	if err := os.CopyFS(dst, os.DirFS(filepath.Join(f.catalog, "webapp", "1.1.0"))); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"package.yaml", "chart/Chart.yaml", "chart/templates/all.yaml"} {
		file := filepath.Join(dst, rel)
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(b), "1.1.0", version)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secret := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-token\nstringData:\n  token: " + token + "\n  region: eu-west\n"
	if err := os.WriteFile(filepath.Join(dst, "chart", "templates", "secret.yaml"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A controller's proposal, made as the controller makes it (one commit of
// the upgrade on a branch berth/upgrade/APP/VERSION): the upgrades page
// shows, collapsed, the objects and files the branch changes, the
// ConfigMap's diff, and the Secret's changed key without any value.
func TestBrowserProposalShowsItsDiffWithSecretsMasked(t *testing.T) {
	const alpha, bravo = "alpha-token-4c7e1", "bravo-token-9d2f3"
	var branch, tip string
	f := newFixtureWith(t, func(f *fixture) {
		ctx := context.Background()
		f.addWebappVersion(t, "1.2.0", alpha)
		f.addWebappVersion(t, "1.3.0", bravo)
		f.publish(t, "1.0.0")
		if _, err := f.env.Upgrade(ctx, lifecycle.UpgradeOptions{Apps: []string{f.app}, To: "1.2.0"}); err != nil {
			t.Fatal(err)
		}
		base := f.git("rev-parse", "HEAD")
		if _, err := f.env.Upgrade(ctx, lifecycle.UpgradeOptions{Apps: []string{f.app}, To: "1.3.0"}); err != nil {
			t.Fatal(err)
		}
		tip = f.git("rev-parse", "HEAD")
		branch = upgrades.ProposalBranch(f.app, "1.3.0")
		f.git("branch", branch, tip)
		f.git("reset", "--quiet", "--hard", base)
		f.followed(t, func(ws *berthv1.Workspace) {
			ws.Status.Upgrades = &berthv1.UpgradesStatus{Proposals: []berthv1.UpgradeProposal{{App: f.app, Package: "webapp", From: "1.2.0", To: "1.3.0", Channel: "stable",
				Branch: branch, Commit: tip, Base: base, Plan: berthv1.UpgradePlan{Changed: 3}}}}
		})
	})
	ctx := browser(t)
	f.signInAs(t, ctx, operatorUser)
	details := `details.branch-diff[data-branch="` + branch + `"]`
	settings := details + ` div.object-diff[data-object^="ConfigMap/` + f.app + `-settings"]`
	secret := details + ` div.object-diff[data-object^="Secret/` + f.app + `-token"]`
	var open bool
	var summary, settingsDiff, keys, secretDiff, appDiff, lockDiff, html string
	run(t, ctx, "proposal diff",
		chromedp.Navigate(f.url+"/upgrades"),
		chromedp.WaitVisible(details+" summary", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector(`+jsString(details)+`).open`, &open),
		chromedp.Text(details+" summary", &summary, chromedp.ByQuery),
		chromedp.Click(details+" summary", chromedp.ByQuery),
		chromedp.WaitVisible(settings+" pre.diff", chromedp.ByQuery),
		chromedp.Text(settings+" pre.diff", &settingsDiff, chromedp.ByQuery),
		chromedp.Text(secret+" .secret-keys", &keys, chromedp.ByQuery),
		chromedp.Text(secret+" pre.diff", &secretDiff, chromedp.ByQuery),
		chromedp.Text(details+` div.file-diff[data-file="apps/`+f.app+`/app.yaml"] pre.diff`, &appDiff, chromedp.ByQuery),
		chromedp.Text(details+` div.file-diff[data-file="berth.lock"] pre.diff`, &lockDiff, chromedp.ByQuery),
		chromedp.OuterHTML("html", &html, chromedp.ByQuery),
	)
	shot(t, ctx, "upgrade-diff")
	if open {
		t.Errorf("the diff is open before it is asked for")
	}
	if !strings.Contains(summary, "objects 3 changed") {
		t.Errorf("the collapsed diff says %q, want the ConfigMap, Deployment and Secret changed", summary)
	}
	if !strings.Contains(settingsDiff, "-  version: 1.2.0") || !strings.Contains(settingsDiff, "+  version: 1.3.0") {
		t.Errorf("the ConfigMap's diff does not show its version change:\n%s", settingsDiff)
	}
	if keys != "Keys: token (changed)" {
		t.Errorf("the Secret's keys = %q, want only token changed", keys)
	}
	if !strings.Contains(secretDiff, "token: '*** (after)'") {
		t.Errorf("the Secret's diff does not show the masked change:\n%s", secretDiff)
	}
	if !strings.Contains(appDiff, "=1.3.0") || !strings.Contains(lockDiff, "1.3.0") {
		t.Errorf("app.yaml's or the lock's diff lacks the new version:\napp.yaml:\n%s\nberth.lock:\n%s", appDiff, lockDiff)
	}
	for _, v := range []string{alpha, bravo, base64.StdEncoding.EncodeToString([]byte(alpha)), base64.StdEncoding.EncodeToString([]byte(bravo))} {
		if strings.Contains(html, v) {
			t.Errorf("the upgrades page holds the secret value %q", v)
		}
	}
}

// jsString quotes s for a JavaScript expression.
func jsString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
