package packagetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const helloPackage = `apiVersion: berth.dev/v1alpha1
kind: Package
name: hello
version: VERSION
description: A greeting in a ConfigMap.
manifests: [greeting.yaml]
config:
  - name: greeting
    type: string
    description: What to say.
    default: hi
`

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// helloCatalog writes a directory catalog with hello 1.0.0 and 1.1.0.
func helloCatalog(t *testing.T) string {
	t.Helper()
	cat := t.TempDir()
	for _, v := range []string{"1.0.0", "1.1.0"} {
		writeFile(t, filepath.Join(cat, "hello", v, "package.yaml"), strings.Replace(helloPackage, "VERSION", v, 1))
		writeFile(t, filepath.Join(cat, "hello", v, "greeting.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello}\n")
	}
	writeFile(t, filepath.Join(cat, "hello", "channels.yaml"), "# Which version each channel points to.\nstable: 1.0.0 # tested\nlatest: 1.1.0\n")
	return cat
}

func passingReport(t *testing.T, dir, name, version string, status Status) {
	t.Helper()
	digest, err := Digest(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &Report{APIVersion: "berth.dev/v1alpha1", Kind: ReportKind, Package: name, Version: version, Digest: digest, Status: status, Finished: time.Now()}
	r.Steps = []Step{{Name: StepRender, Status: StatusPassed}, {Name: StepInstall, Status: status, Error: "boom"}}
	if err := WriteReport(ReportPath(dir), r); err != nil {
		t.Fatal(err)
	}
}

func TestPromote(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		prepare func(t *testing.T, dir string)
		reason  RefusalReason
	}{
		"passed": {prepare: func(t *testing.T, dir string) { passingReport(t, dir, "hello", "1.1.0", StatusPassed) }},
		"no report": {
			prepare: func(t *testing.T, dir string) {},
			reason:  ReasonNotTested,
		},
		"failed": {
			prepare: func(t *testing.T, dir string) { passingReport(t, dir, "hello", "1.1.0", StatusFailed) },
			reason:  ReasonFailed,
		},
		"edited after the test": {
			prepare: func(t *testing.T, dir string) {
				passingReport(t, dir, "hello", "1.1.0", StatusPassed)
				writeFile(t, filepath.Join(dir, "greeting.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bye}\n")
			},
			reason: ReasonChanged,
		},
		"file added after the test": {
			prepare: func(t *testing.T, dir string) {
				passingReport(t, dir, "hello", "1.1.0", StatusPassed)
				writeFile(t, filepath.Join(dir, "extra.yaml"), "x: 1\n")
			},
			reason: ReasonChanged,
		},
		"report of another version": {
			prepare: func(t *testing.T, dir string) { passingReport(t, dir, "hello", "1.0.0", StatusPassed) },
			reason:  ReasonNotTested,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cat := helloCatalog(t)
			dir := filepath.Join(cat, "hello", "1.1.0")
			tc.prepare(t, dir)
			before, _ := os.ReadFile(filepath.Join(cat, "hello", "channels.yaml"))
			res, err := Promote(ctx, PromoteOptions{Catalog: cat, Package: "hello", Version: "1.1.0", Channel: "stable"})
			after, _ := os.ReadFile(filepath.Join(cat, "hello", "channels.yaml"))
			if tc.reason != "" {
				var refused *RefusedError
				if !errors.As(err, &refused) || refused.Reason != tc.reason {
					t.Fatalf("Promote error = %v, want a refusal for %s", err, tc.reason)
				}
				if string(after) != string(before) {
					t.Errorf("a refused promotion changed channels.yaml:\n%s", after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.From != "1.0.0" || res.To != "1.1.0" {
				t.Errorf("Promote = %+v, want stable 1.0.0 -> 1.1.0", res)
			}
			want := "# Which version each channel points to.\nstable: 1.1.0 # tested\nlatest: 1.1.0\n"
			if string(after) != want {
				t.Errorf("channels.yaml = %q, want %q", after, want)
			}
		})
	}
}

func TestPromoteAddsAChannelAndRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	cat := helloCatalog(t)
	dir := filepath.Join(cat, "hello", "1.0.0")
	passingReport(t, dir, "hello", "1.0.0", StatusPassed)
	if _, err := Promote(ctx, PromoteOptions{Catalog: cat, Package: "hello", Version: "1.0.0", Channel: "warm"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(cat, "hello", "channels.yaml")); !strings.HasSuffix(string(got), "latest: 1.1.0\nwarm: 1.0.0\n") {
		t.Errorf("channels.yaml after adding warm:\n%s", got)
	}
	for name, o := range map[string]PromoteOptions{
		"bad channel":     {Catalog: cat, Package: "hello", Version: "1.0.0", Channel: "Stable!"},
		"missing version": {Catalog: cat, Package: "hello", Version: "9.9.9", Channel: "stable"},
	} {
		if _, err := Promote(ctx, o); err == nil {
			t.Errorf("%s: Promote succeeded", name)
		}
	}
}
