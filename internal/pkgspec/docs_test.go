package pkgspec

import (
	"os"
	"strings"
	"testing"
)

// TestDocsExample keeps the complete example of docs/packages.md valid.
func TestDocsExample(t *testing.T) {
	b, err := os.ReadFile("../../docs/packages.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "```yaml\napiVersion: berth.dev/v1alpha1")
	if start < 0 {
		t.Fatal("docs/packages.md has no complete package.yaml example")
	}
	body := doc[start+len("```yaml\n"):]
	body = body[:strings.Index(body, "```")]
	p, err := Parse("docs/packages.md", []byte(body))
	if err != nil {
		t.Fatalf("the example in docs/packages.md is invalid: %v", err)
	}
	if len(p.Config) < 8 || len(p.Dependencies) != 2 || len(p.Rules) != 1 {
		t.Errorf("the example lost parts: %d parameters, %d dependencies, %d rules", len(p.Config), len(p.Dependencies), len(p.Rules))
	}
	types := map[ParamType]bool{}
	for _, q := range p.Config {
		types[q.Type] = true
	}
	for _, typ := range ParamTypes {
		if !types[typ] {
			t.Errorf("the example has no parameter of type %s", typ)
		}
	}
	cfg, err := p.Configure(ConfigureOptions{Values: map[string]any{"domain": "bi.example.com", "ha": true, "replicas": 1}})
	if err == nil || !strings.Contains(err.Error(), "high availability needs at least 2 replicas") {
		t.Errorf("the example's rule did not fire: %v %v", cfg, err)
	}
}
