package pkgspec

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const schema = `config:
  - {name: name, type: string, default: app, min: 2, max: 10, pattern: '^[a-z]+$'}
  - {name: replicas, type: int, default: 1, min: 1, max: 9}
  - {name: ha, type: bool, default: false}
  - {name: mode, type: enum, values: [small, large], default: small}
  - {name: password, type: password, min: 12}
  - {name: token, type: string, secret: true, generate: {length: 32}}
  - {name: key, type: password, generate: {length: 16, charset: hex}}
  - {name: host, type: domain}
  - {name: storage, type: size, default: 10Gi, min: 1Gi, max: 1Ti}
  - {name: timeout, type: duration, default: 30s, min: 1s, max: 1h}
  - {name: persistence, type: bool, default: true}
  - {name: storageClass, type: string, required: true, when: self.persistence}
  - {name: ingress, type: bool, default: false}
  - {name: ingressHost, type: domain, required: true, when: self.ingress, description: The public host name}
rules:
  - rule: "!self.ha || self.replicas >= 3"
    message: HA needs at least 3 replicas
  - rule: "self.mode != 'large' || self.storage != '10Gi'"
    message: a large instance needs more than the default storage
`

type fixedGen struct{}

func (fixedGen) Generate(param string, spec Generate) (string, error) {
	return strings.Repeat("g", spec.Length), nil
}

func TestConfigure(t *testing.T) {
	p := mustParse(t, schema)
	defaults := Config{
		"name": "app", "replicas": int64(1), "ha": false, "mode": "small", "password": "",
		"token": strings.Repeat("g", 32), "key": strings.Repeat("g", 16), "host": "",
		"storage": "10Gi", "timeout": "30s", "persistence": true, "storageClass": "fast",
		"ingress": false, "ingressHost": "",
	}
	with := func(kv ...any) Config {
		c := Config{}
		for k, v := range defaults {
			c[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	tests := map[string]struct {
		values   map[string]any
		previous map[string]any
		want     Config
		errs     []string
	}{
		"defaults":             {values: map[string]any{"storageClass": "fast"}, want: defaults},
		"strings from --set":   {values: map[string]any{"storageClass": "fast", "replicas": "3", "ha": "true"}, want: with("replicas", int64(3), "ha", true)},
		"yaml numbers":         {values: map[string]any{"storageClass": "fast", "replicas": 4, "storage": 5000000000}, want: with("replicas", int64(4), "storage", "5000000000")},
		"json numbers":         {values: map[string]any{"storageClass": "fast", "replicas": float64(5)}, want: with("replicas", int64(5))},
		"previous generated":   {values: map[string]any{"storageClass": "fast"}, previous: map[string]any{"token": "kept", "name": "ignored"}, want: with("token", "kept")},
		"user beats generated": {values: map[string]any{"storageClass": "fast", "key": "mine"}, want: with("key", "mine")},
		"every type valid": {values: map[string]any{"storageClass": "fast", "name": "web", "mode": "large", "password": "correct horse battery",
			"host": "db.example.com", "storage": "20Gi", "timeout": "5m", "ingress": true, "ingressHost": "a.example.com"},
			want: with("name", "web", "mode", "large", "password", "correct horse battery", "host", "db.example.com", "storage", "20Gi", "timeout", "5m", "ingress", true, "ingressHost", "a.example.com")},
		"when off, not required":    {values: map[string]any{"persistence": false}, want: with("persistence", false, "storageClass", "")},
		"required":                  {values: map[string]any{}, errs: []string{`config "storageClass": is required when self.persistence; set it, e.g. --set storageClass=...`}},
		"required with description": {values: map[string]any{"storageClass": "x", "ingress": true}, errs: []string{`config "ingressHost": is required when self.ingress; The public host name; set it`}},
		"unknown":                   {values: map[string]any{"storageClass": "x", "replica": 3}, errs: []string{`config "replica": is not a parameter of demo; known parameters: name, replicas,`}},
		"int type":                  {values: map[string]any{"storageClass": "x", "replicas": "three"}, errs: []string{`config "replicas": must be a whole number (got "three"); use digits only`}},
		"int fraction":              {values: map[string]any{"storageClass": "x", "replicas": 1.5}, errs: []string{`must be a whole number`}},
		"int min":                   {values: map[string]any{"storageClass": "x", "replicas": 0}, errs: []string{`config "replicas": must be at least 1 (got 0); use a value of 1 or more`}},
		"int max":                   {values: map[string]any{"storageClass": "x", "replicas": 10}, errs: []string{`must be at most 9 (got 10)`}},
		"bool":                      {values: map[string]any{"storageClass": "x", "ha": "yes please"}, errs: []string{`config "ha": must be true or false (got "yes please")`}},
		"enum":                      {values: map[string]any{"storageClass": "x", "mode": "huge"}, errs: []string{`config "mode": must be one of small, large (got "huge")`}},
		"string type":               {values: map[string]any{"storageClass": "x", "name": []any{"a"}}, errs: []string{`config "name": must be a string, not []interface {}`}},
		"string min":                {values: map[string]any{"storageClass": "x", "name": "a"}, errs: []string{`must be at least 2 characters long (got 1)`}},
		"string max":                {values: map[string]any{"storageClass": "x", "name": "abcdefghijk"}, errs: []string{`must be at most 10 characters long (got 11)`}},
		"pattern":                   {values: map[string]any{"storageClass": "x", "name": "Web"}, errs: []string{`config "name": must match the pattern ^[a-z]+$ (got "Web")`}},
		"domain":                    {values: map[string]any{"storageClass": "x", "host": "not a host"}, errs: []string{`config "host": must be a domain name`}},
		"domain no dot":             {values: map[string]any{"storageClass": "x", "host": "localhost"}, errs: []string{`must be a domain name`}},
		"size":                      {values: map[string]any{"storageClass": "x", "storage": "big"}, errs: []string{`config "storage": must be a size such as 512Mi or 10Gi (got "big")`}},
		"size min":                  {values: map[string]any{"storageClass": "x", "storage": "512Mi"}, errs: []string{`must be at least 1Gi (got 512Mi)`}},
		"size max":                  {values: map[string]any{"storageClass": "x", "storage": "2Ti"}, errs: []string{`must be at most 1Ti (got 2Ti)`}},
		"duration":                  {values: map[string]any{"storageClass": "x", "timeout": "soon"}, errs: []string{`config "timeout": must be a duration`}},
		"duration min":              {values: map[string]any{"storageClass": "x", "timeout": "10ms"}, errs: []string{`must be at least 1s (got 10ms)`}},
		"duration max":              {values: map[string]any{"storageClass": "x", "timeout": "2h"}, errs: []string{`must be at most 1h0m0s (got 2h)`}},
		"password hidden":           {values: map[string]any{"storageClass": "x", "password": "hunter2"}, errs: []string{`config "password": must be at least 12 characters long (got 7)`}},
		"cel rule":                  {values: map[string]any{"storageClass": "x", "ha": true, "replicas": 2}, errs: []string{`config "ha, replicas": HA needs at least 3 replicas; rule: !self.ha || self.replicas >= 3`}},
		"cel rule strings":          {values: map[string]any{"storageClass": "x", "mode": "large"}, errs: []string{`config "mode, storage": a large instance needs more`}},
		"cel rule passes":           {values: map[string]any{"storageClass": "fast", "ha": true, "replicas": 3}, want: with("ha", true, "replicas", int64(3))},
		"several errors":            {values: map[string]any{"storageClass": "x", "replicas": 0, "mode": "x"}, errs: []string{`"replicas"`, `"mode"`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := p.Configure(ConfigureOptions{Values: tc.values, Previous: tc.previous, Generator: fixedGen{}})
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("Configure: %v", err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("config (-want +got):\n%s", diff)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Configure error = %v, want a *ConfigError", err)
			}
			if len(ce.Errors) != len(tc.errs) {
				t.Fatalf("got %d errors, want %d: %v", len(ce.Errors), len(tc.errs), err)
			}
			for i, w := range tc.errs {
				if !strings.Contains(ce.Errors[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, ce.Errors[i].Error(), w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error reveals a secret value: %v", err)
			}
		})
	}
}

func TestConfigureWhenReferencesOnlyKnownKeys(t *testing.T) {
	p := mustParse(t, "config: [{name: a, type: int, when: self.nosuch}]\n")
	_, err := p.Configure(ConfigureOptions{})
	if err == nil || !strings.Contains(err.Error(), `config "a": its when condition "self.nosuch" cannot be evaluated`) {
		t.Fatalf("Configure error = %v, want the when condition's evaluation error", err)
	}
}

func TestGenerators(t *testing.T) {
	seed := []byte("0123456789abcdef0123456789abcdef")
	spec := Generate{Length: 32}
	a1, _ := SeededGenerator(seed, "ns/app").Generate("password", spec)
	a2, _ := SeededGenerator(seed, "ns/app").Generate("password", spec)
	b, _ := SeededGenerator(seed, "ns/other").Generate("password", spec)
	c, _ := SeededGenerator(seed, "ns/app").Generate("token", spec)
	if a1 != a2 {
		t.Errorf("seeded values differ across runs: %q, %q", a1, a2)
	}
	if a1 == b || a1 == c {
		t.Errorf("seeded values collide across scopes or parameters")
	}
	for name, g := range map[string]Generator{"seeded": SeededGenerator(seed, "x"), "random": RandomGenerator()} {
		for _, cs := range []Charset{Alphanumeric, Hex} {
			v, err := g.Generate("p", Generate{Length: 40, Charset: cs})
			if err != nil {
				t.Fatalf("%s %s: %v", name, cs, err)
			}
			if len(v) != 40 || strings.Trim(v, cs.alphabet()) != "" {
				t.Errorf("%s %s generated %q, want 40 characters of %s", name, cs, v, cs.alphabet())
			}
		}
	}
	r1, _ := RandomGenerator().Generate("p", spec)
	r2, _ := RandomGenerator().Generate("p", spec)
	if r1 == r2 {
		t.Errorf("two random values are equal: %q", r1)
	}
	if _, err := SeededGenerator([]byte("short"), "x").Generate("p", spec); err == nil {
		t.Error("a short seed was accepted")
	}
}
