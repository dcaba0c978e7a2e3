package wizard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/pkgspec"
)

const pkgYAML = `apiVersion: berth.dev/v1alpha1
kind: Package
name: demo
version: 1.0.0
description: A demo package.
manifests: [all.yaml]
config:
  - {name: owner, type: string, required: true, pattern: '^[a-z]+$', description: Who runs it}
  - {name: ha, type: bool, default: false}
  - {name: replicas, type: int, default: 1, min: 1, max: 9}
  - {name: ingress, type: bool, default: false}
  - {name: host, type: domain, required: true, when: self.ingress}
  - {name: adminPassword, type: password, generate: {length: 24}}
rules:
  - rule: "!self.ha || self.replicas >= 3"
    message: HA needs at least 3 replicas
`

func demo(t *testing.T) *pkgspec.Package {
	t.Helper()
	p, err := pkgspec.Parse("demo/package.yaml", []byte(pkgYAML))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[a-zA-Z]`)

func TestAccessibleWizardShowsErrorsInlineAndAsksConditionalQuestions(t *testing.T) {
	// Line by line: an owner that breaks the pattern, then a good one; HA on; a
	// replica count that breaks the rule, then one that passes; ingress on, which
	// brings up the host question, first answered with a bad domain.
	input := strings.Join([]string{
		"Bad Owner", "ops",
		"y",
		"2", "3",
		"y",
		"not a domain!", "app.example.com",
	}, "\n") + "\n"
	var out bytes.Buffer
	got, err := Ask(context.Background(), demo(t), nil, Options{In: strings.NewReader(input), Out: &out, Accessible: true, All: true})
	if err != nil {
		t.Fatalf("Ask: %v\noutput:\n%s", err, out.String())
	}
	want := map[string]any{"owner": "ops", "ha": true, "replicas": "3", "ingress": true, "host": "app.example.com"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	text := ansi.ReplaceAllString(out.String(), "")
	for _, msg := range []string{"owner must match", "HA needs at least 3 replicas", "host "} {
		if !strings.Contains(text, msg) {
			t.Errorf("output lacks the inline error %q:\n%s", msg, text)
		}
	}
	if strings.Contains(text, "adminPassword") {
		t.Error("a generated parameter was asked for")
	}
	// The answers configure the package.
	values := map[string]any{}
	for k, v := range got {
		values[k] = v
	}
	if _, err := demo(t).Configure(pkgspec.ConfigureOptions{Values: values}); err != nil {
		t.Errorf("the wizard's answers do not configure the package: %v", err)
	}
}

func TestWizardAsksOnlyWhatItMust(t *testing.T) {
	tests := map[string]struct {
		given map[string]any
		input string
		want  map[string]any
		asked []string
	}{
		"required owner only": {
			input: "ops\n",
			want:  map[string]any{"owner": "ops"},
			asked: []string{"owner"},
		},
		"conditional question once its condition holds": {
			given: map[string]any{"ingress": true},
			input: "ops\nweb.example.com\n",
			want:  map[string]any{"owner": "ops", "host": "web.example.com"},
			asked: []string{"owner", "host"},
		},
		"nothing when everything is given": {
			given: map[string]any{"owner": "ops"},
			want:  map[string]any{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			got, err := Ask(context.Background(), demo(t), tc.given, Options{In: strings.NewReader(tc.input), Out: &out, Accessible: true})
			if err != nil {
				t.Fatalf("Ask: %v\n%s", err, out.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("answers (-want +got):\n%s", diff)
			}
			text := ansi.ReplaceAllString(out.String(), "")
			for _, p := range []string{"owner", "ha", "replicas", "ingress", "host"} {
				asked := strings.Contains(text, p+" ") || strings.Contains(text, p+"\n") || strings.Contains(text, p+" *")
				if want := contains(tc.asked, p); asked != want {
					t.Errorf("asked for %s: %v, want %v\n%s", p, asked, want, text)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// screen is the terminal the form draws on, safe to read while it draws.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ansi.ReplaceAllString(s.buf.String(), "")
}

// typist types each step's keys once the screen shows the step's cue, as a
// person reads before typing.
type typist struct {
	screen *screen
	steps  []step
}

type step struct {
	cue  string
	keys string
}

func (k *typist) Read(p []byte) (int, error) {
	if len(k.steps) == 0 {
		return 0, io.EOF
	}
	s := k.steps[0]
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(k.screen.String(), s.cue); {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the screen never showed %q:\n%s", s.cue, k.screen.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	k.steps = k.steps[1:]
	return copy(p, s.keys), nil
}

func TestTerminalWizardRejectsAValueBreakingARuleUntilFixed(t *testing.T) {
	// Through the full-screen form: HA is given; the replica question opens with
	// its default (1). Enter submits it, the rule's message appears and the form
	// stays; backspace, 5, Enter submits a value that passes.
	scr := &screen{}
	in := &typist{screen: scr, steps: []step{
		{cue: "replicas", keys: "\r"},
		{cue: "HA needs at least 3 replicas", keys: "\x7f5"},
		{cue: "5", keys: "\r"},
	}}
	got, err := Ask(context.Background(), demo(t), map[string]any{"owner": "ops", "ha": true, "ingress": false},
		Options{In: in, Out: scr, All: true})
	if err != nil {
		t.Fatalf("Ask: %v\n%s", err, scr.String())
	}
	if got["replicas"] != "5" {
		t.Errorf("replicas = %v, want 5", got["replicas"])
	}
}
