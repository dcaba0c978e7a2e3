package workspace

import (
	"fmt"
	"strings"
)

// InstanceRole says what a lock instance is for.
type InstanceRole string

// Instance roles.
const (
	RoleApp       InstanceRole = "app"       // an app the user installed: app:NAME
	RoleComponent InstanceRole = "component" // a private component of an app: app:NAME/DEPENDENCY
	RoleShared    InstanceRole = "shared"    // a shared dependency, an app of its own: shared:PACKAGE
)

func (r InstanceRole) String() string { return string(r) }

// InstanceKey identifies a package instance in berth.lock. Its text form is the
// resolver's key: app:NAME, app:NAME/DEPENDENCY or shared:PACKAGE.
type InstanceKey struct {
	Role InstanceRole
	// App is the app the instance belongs to (the owner of a component); empty
	// for a shared instance.
	App string
	// Component is the dependency name of a component.
	Component string
	// Package is the package of a shared instance.
	Package string
}

// ParseInstanceKey parses the text form of a lock instance's key.
func ParseInstanceKey(s string) (InstanceKey, error) {
	if pkg, ok := strings.CutPrefix(s, "shared:"); ok && pkg != "" && !strings.Contains(pkg, "/") {
		return InstanceKey{Role: RoleShared, Package: pkg}, nil
	}
	if rest, ok := strings.CutPrefix(s, "app:"); ok {
		app, comp, isComp := strings.Cut(rest, "/")
		switch {
		case app == "":
		case !isComp:
			return InstanceKey{Role: RoleApp, App: app}, nil
		case comp != "" && !strings.Contains(comp, "/"):
			return InstanceKey{Role: RoleComponent, App: app, Component: comp}, nil
		}
	}
	return InstanceKey{}, fmt.Errorf("instance key %q is malformed: want app:NAME, app:NAME/DEPENDENCY or shared:PACKAGE", s)
}

// String returns the key's text form.
func (k InstanceKey) String() string {
	switch k.Role {
	case RoleShared:
		return "shared:" + k.Package
	case RoleComponent:
		return "app:" + k.App + "/" + k.Component
	default:
		return "app:" + k.App
	}
}

// DeployedBy is the app whose deploy applies the instance: the app itself,
// the owner of a component, or the app a shared instance is installed as.
func (k InstanceKey) DeployedBy() string {
	if k.Role == RoleShared {
		name, _ := SharedApp(k.Package)
		return name
	}
	return k.App
}

// IsApp reports whether the instance is an app of its own (installed by the
// user, or shared), not a component.
func (k InstanceKey) IsApp() bool { return k.Role != RoleComponent }

// SharedApp returns the app name and namespace a shared dependency is
// installed as: both are the package's name.
func SharedApp(pkg string) (app, namespace string) { return pkg, pkg }
