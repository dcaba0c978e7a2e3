package pkgspec_test

import (
	"fmt"

	"berth.dev/berth/internal/pkgspec"
)

func ExamplePackage_Configure() {
	p, err := pkgspec.Parse("demo/package.yaml", []byte(`apiVersion: berth.dev/v1alpha1
kind: Package
name: demo
version: 1.0.0
description: A demo.
manifests: [all.yaml]
config:
  - {name: replicas, type: int, default: 1, min: 1}
  - {name: ha, type: bool, default: false}
rules:
  - rule: "!self.ha || self.replicas >= 3"
    message: HA needs at least 3 replicas
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg, err := p.Configure(pkgspec.ConfigureOptions{Values: map[string]any{"replicas": "3", "ha": "true"}})
	fmt.Println(cfg, err)
	_, err = p.Configure(pkgspec.ConfigureOptions{Values: map[string]any{"ha": true}})
	fmt.Println(err)
	// Output:
	// map[ha:true replicas:3] <nil>
	// invalid configuration for demo 1.0.0: config "ha, replicas": HA needs at least 3 replicas; rule: !self.ha || self.replicas >= 3
}
