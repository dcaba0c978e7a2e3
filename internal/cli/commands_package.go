package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/workspace"
)

// packageCommands returns the commands of berth catalog, search, show and template (internal/pkgspec, catalog, resolve, render).
func packageCommands(app *App) []*cobra.Command {
	return []*cobra.Command{
		newCatalogCmd(app),
		newSearchCmd(app),
		newShowCmd(app),
		newTemplateCmd(app),
		newPackageCmd(app),
	}
}

// catalogs returns the catalogs of the workspace the current directory is in,
// or outside a workspace those kept in berth's home.
func (a *App) catalogs() (*catalog.Set, string, error) {
	ws, err := optionalWorkspace(".")
	if err != nil {
		return nil, "", err
	}
	return a.catalogsFor(ws)
}

// optionalWorkspace opens the workspace dir is in; nil when it is in none.
func optionalWorkspace(dir string) (*workspace.Workspace, error) {
	ws, err := workspace.Open(dir)
	if errors.Is(err, workspace.ErrNotWorkspace) {
		return nil, nil
	}
	return ws, err
}

// catalogsFor returns the catalogs of ws (berth.yaml's catalogs: after the
// built-in one), or with ws nil those in berth's home (catalogs.yaml).
func (a *App) catalogsFor(ws *workspace.Workspace) (*catalog.Set, string, error) {
	home, err := a.home()
	if err != nil {
		return nil, "", err
	}
	var set *catalog.Set
	if ws == nil {
		set, err = catalog.Open(home)
	} else {
		set, err = catalog.OpenRefs(home, ws.Root, catalogRefs(ws.Config.Catalogs))
		if err != nil {
			err = fmt.Errorf("%s: catalogs: %w", ws.Abs(workspace.ConfigFile), err)
		}
	}
	if err != nil {
		return nil, home, err
	}
	// Entries a catalog holds but berth cannot use are left out; say which.
	set.OnProblem = func(p catalog.Problem) { fmt.Fprintf(a.Err, "warning: %s\n", p) }
	return set, home, nil
}

func catalogRefs(refs []workspace.CatalogRef) []catalog.Ref {
	out := make([]catalog.Ref, 0, len(refs))
	for _, r := range refs {
		out = append(out, catalog.Ref{Name: r.Name, Type: catalog.Type(r.Type), URL: r.URL})
	}
	return out
}

// catalogScope is where catalog commands read and write: the workspace
// (berth.yaml, a commit per change) or, outside one, berth's home.
type catalogScope struct {
	dir string
}

func (c *catalogScope) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&c.dir, "workspace", "C", ".", "the workspace whose catalogs to manage (outside a workspace: berth's home)")
}

// saveCatalogs writes the workspace's catalogs to berth.yaml as one commit.
func saveCatalogs(ctx context.Context, ws *workspace.Workspace, refs []workspace.CatalogRef, msg string) error {
	cfg := ws.Config
	cfg.Catalogs = refs
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	err = ws.Change(ctx, msg, []string{workspace.ConfigFile}, func() error {
		return ws.WriteFile(workspace.ConfigFile, data)
	})
	if err != nil {
		return err
	}
	ws.Config = cfg
	return nil
}

// catalogUsers names the apps whose locked packages come from catalog name.
func catalogUsers(ws *workspace.Workspace, name string) ([]string, error) {
	lock, err := ws.Lock()
	if err != nil {
		return nil, err
	}
	var apps []string
	for _, in := range lock.Instances {
		if in.Catalog != name {
			continue
		}
		k, err := workspace.ParseInstanceKey(in.Key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", workspace.LockFile, err)
		}
		apps = append(apps, k.DeployedBy())
	}
	slices.Sort(apps)
	return slices.Compact(apps), nil
}

func newCatalogCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Manage the catalogs berth installs packages from",
		Long: `A catalog is a set of packages with their versions and channels. berth always
has the built-in catalog ('builtin'), embedded in the binary; add more from a
directory, a git repository or an HTTP server. Packages are looked up in the
built-in catalog first, then in the others in the order they were added; write
CATALOG/PACKAGE to pick one.

Inside a workspace the catalogs are the workspace's: 'catalog add' and
'catalog remove' change berth.yaml (a commit), so every clone, CI and the
controller resolve from the same catalogs. Outside a workspace they are kept in
berth's home (catalogs.yaml), for search, show and template.`,
	}
	cmd.AddCommand(newCatalogAddCmd(app), newCatalogListCmd(app), newCatalogUpdateCmd(app), newCatalogRemoveCmd(app))
	cmd.AddCommand(newCatalogIndexCmd(app), newCatalogPromoteCmd(app))
	return cmd
}

func newCatalogAddCmd(app *App) *cobra.Command {
	var typ string
	var scope catalogScope
	var out output
	cmd := &cobra.Command{
		Use:   "add NAME URL|PATH",
		Short: "Add a catalog from a directory, a git repository or an HTTP server",
		Long: `Add a catalog. A path to an existing directory adds a directory catalog; a URL
ending in .git, or an ssh or file:// address, a git repository (cloned with the
git binary); any other http(s) URL an HTTP catalog (an index.yaml plus one
archive per package version). berth reads the catalog before adding it, so a
catalog that cannot be read is never added.

Inside a workspace the catalog is added to berth.yaml and committed; a
directory inside the workspace is recorded relative to it.`,
		Example: `  berth catalog add team ./catalog
  berth catalog add community https://git.example.com/berth/catalog.git
  berth catalog add mirror https://packages.example.com/berth/ --type http`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			home, err := app.home()
			if err != nil {
				return err
			}
			ws, err := optionalWorkspace(scope.dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Err, "• reading catalog %s from %s\n", args[0], args[1])
			ref := catalog.Ref{Name: args[0], URL: args[1], Type: catalog.Type(typ)}
			var r catalog.Ref
			if ws == nil {
				r, err = catalog.Add(ctx, home, ref)
			} else {
				r, err = addWorkspaceCatalog(ctx, home, ws, ref)
			}
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, r)
			}
			where := "berth's home"
			if ws != nil {
				where = "the workspace (" + workspace.ConfigFile + ", committed)"
			}
			fmt.Fprintf(app.Out, "Added catalog %s (%s, %s) to %s.\n", r.Name, r.Type, r.URL, where)
			return nil
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "catalog type: dir, git or http (detected from URL|PATH when empty)")
	scope.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

// addWorkspaceCatalog checks a catalog and records it in the workspace's berth.yaml.
func addWorkspaceCatalog(ctx context.Context, home string, ws *workspace.Workspace, ref catalog.Ref) (catalog.Ref, error) {
	have := catalogRefs(ws.Config.Catalogs)
	if ref.Type == "" || ref.Type == catalog.TypeDir {
		// Relative paths are the user's, relative to where they are.
		if abs, err := filepath.Abs(ref.URL); err == nil && !strings.Contains(ref.URL, "://") && !strings.HasPrefix(ref.URL, "git@") {
			if _, err := os.Stat(abs); err == nil {
				ref.URL = abs
			}
		}
	}
	r, err := catalog.Check(ctx, home, ref, have)
	if err != nil {
		return r, err
	}
	recorded := r
	if r.Type == catalog.TypeDir {
		// Inside the workspace: relative, so that every clone finds it.
		if rel, err := filepath.Rel(ws.Root, r.URL); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			recorded.URL = filepath.ToSlash(rel)
		}
	}
	refs := append(slices.Clone(ws.Config.Catalogs), workspace.CatalogRef{Name: r.Name, Type: string(r.Type), URL: recorded.URL})
	if err := saveCatalogs(ctx, ws, refs, "catalog add "+r.Name+" ("+string(r.Type)+")"); err != nil {
		return r, err
	}
	return recorded, nil
}

func newCatalogListCmd(app *App) *cobra.Command {
	var scope catalogScope
	var out output
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List catalogs in lookup order",
		Example: `  berth catalog list
  berth catalog list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ws, err := optionalWorkspace(scope.dir)
			if err != nil {
				return err
			}
			set, _, err := app.catalogsFor(ws)
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, set.Refs)
			}
			tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTYPE\tURL")
			for _, r := range set.Refs {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Type, r.URL)
			}
			return tw.Flush()
		},
	}
	scope.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func newCatalogUpdateCmd(app *App) *cobra.Command {
	var scope catalogScope
	var out output
	cmd := &cobra.Command{
		Use:   "update [NAME...]",
		Short: "Fetch the latest index of catalogs (all when no name is given)",
		Example: `  berth catalog update
  berth catalog update community`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := optionalWorkspace(scope.dir)
			if err != nil {
				return err
			}
			set, _, err := app.catalogsFor(ws)
			if err != nil {
				return err
			}
			fmt.Fprintln(app.Err, "• fetching the latest catalog indexes")
			if err := set.Update(cmd.Context(), args...); err != nil {
				return err
			}
			names := args
			if len(names) == 0 {
				for _, r := range set.Refs {
					names = append(names, r.Name)
				}
			}
			if out == outputJSON {
				return writeJSON(app.Out, map[string]any{"updated": names})
			}
			fmt.Fprintf(app.Out, "Updated %d catalog(s).\n", len(names))
			return nil
		},
	}
	scope.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

func newCatalogRemoveCmd(app *App) *cobra.Command {
	var scope catalogScope
	var out output
	cmd := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Remove a catalog (refused while an app of the workspace uses it)",
		Example: `  berth catalog remove community`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ws, err := optionalWorkspace(scope.dir)
			if err != nil {
				return err
			}
			if ws == nil {
				home, err := app.home()
				if err != nil {
					return err
				}
				if err := catalog.Remove(home, name); err != nil {
					return err
				}
			} else if err := removeWorkspaceCatalog(cmd.Context(), ws, name); err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, map[string]string{"removed": name})
			}
			fmt.Fprintf(app.Out, "Removed catalog %s.\n", name)
			return nil
		},
	}
	scope.add(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

// removeWorkspaceCatalog removes a catalog from berth.yaml, refusing while an
// app's locked packages come from it.
func removeWorkspaceCatalog(ctx context.Context, ws *workspace.Workspace, name string) error {
	if name == catalog.BuiltinName {
		return errors.New("the built-in catalog cannot be removed")
	}
	i := slices.IndexFunc(ws.Config.Catalogs, func(r workspace.CatalogRef) bool { return r.Name == name })
	if i < 0 {
		return fmt.Errorf("the workspace has no catalog called %s; 'berth catalog list' lists them", name)
	}
	users, err := catalogUsers(ws, name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("catalog %s is in use by %s: their packages come from it; uninstall them first (or move them to another catalog's package with 'berth uninstall' and 'berth install')", name, strings.Join(users, ", "))
	}
	refs := slices.Delete(slices.Clone(ws.Config.Catalogs), i, i+1)
	return saveCatalogs(ctx, ws, refs, "catalog remove "+name)
}

// searchHit is one line of 'berth search -o json'.
type searchHit struct {
	Name        string            `json:"name"`
	Catalog     string            `json:"catalog"`
	Description string            `json:"description"`
	Latest      string            `json:"latest"`
	Channels    map[string]string `json:"channels"`
}

func newSearchCmd(app *App) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "search [TEXT]",
		Short: "Search the catalogs for packages",
		Long: `Search the catalogs for packages whose name, description or keywords contain
TEXT (case-insensitive). Without TEXT, list every package.`,
		Example: `  berth search postgres
  berth search database -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, _, err := app.catalogs()
			if err != nil {
				return err
			}
			text := strings.Join(args, " ")
			found, err := set.Search(cmd.Context(), text)
			if err != nil {
				return err
			}
			hits := []searchHit{}
			for _, f := range found {
				hits = append(hits, searchHit{Name: f.Entry.Name, Catalog: f.Catalog, Description: f.Entry.Description, Latest: f.Entry.Latest(), Channels: f.Entry.Channels})
			}
			if out == outputJSON {
				return writeJSON(app.Out, hits)
			}
			if len(hits) == 0 {
				fmt.Fprintf(app.Out, "No package matches %q. List every package with 'berth search'.\n", text)
				return nil
			}
			tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTABLE\tLATEST\tCATALOG\tDESCRIPTION")
			for _, h := range hits {
				stable := h.Channels["stable"]
				if stable == "" {
					stable = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, stable, h.Latest, h.Catalog, h.Description)
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

// pick resolves PKG[@VERSION|@CHANNEL|@CONSTRAINT] to a package and the
// constraint a resolve request needs. Without a version it is the stable
// channel's version, or the newest version when there is no stable channel.
func pick(ctx context.Context, set *catalog.Set, arg string) (catalog.Found, string, string, error) {
	name, want, _ := strings.Cut(arg, "@")
	f, err := set.Find(ctx, name)
	if err != nil {
		return f, "", "", err
	}
	e := f.Entry
	switch {
	case want == "":
		if v, ok := e.Channels["stable"]; ok {
			return f, v, "=" + v, nil
		}
		return f, e.Latest(), "=" + e.Latest(), nil
	case e.Channels[want] != "":
		return f, e.Channels[want], "=" + e.Channels[want], nil
	}
	if _, ok := e.Version(want); ok {
		return f, want, "=" + want, nil
	}
	if strings.ContainsAny(want, "<>=^~*x ") {
		return f, "", want, nil
	}
	return f, "", "", fmt.Errorf("%s has no version or channel %q (channels: %s; versions: %s)", e.Name, want, channelList(e), versionList(e))
}

func channelList(e *catalog.Entry) string {
	var s []string
	for _, c := range e.ChannelNames() {
		s = append(s, c+"="+e.Channels[c])
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func versionList(e *catalog.Entry) string {
	var s []string
	for _, v := range e.Versions {
		s = append(s, v.Version)
	}
	return strings.Join(s, ", ")
}

// shownParam is a configuration parameter in 'berth show -o json'; the
// defaults of secret parameters are masked.
type shownParam struct {
	pkgspec.Param
	Default any `json:"default,omitempty"`
}

const mask = "********"

type shownPackage struct {
	Catalog      string               `json:"catalog"`
	Name         string               `json:"name"`
	Version      string               `json:"version"`
	Description  string               `json:"description"`
	Homepage     string               `json:"homepage,omitempty"`
	License      string               `json:"license,omitempty"`
	Maintainers  []pkgspec.Maintainer `json:"maintainers,omitempty"`
	Channels     map[string]string    `json:"channels"`
	Versions     []string             `json:"versions"`
	Config       []shownParam         `json:"config"`
	Rules        []pkgspec.Rule       `json:"rules,omitempty"`
	Dependencies []pkgspec.Dependency `json:"dependencies"`
	Outputs      []pkgspec.Output     `json:"outputs,omitempty"`
	Health       []pkgspec.HealthRule `json:"health,omitempty"`
	Runbooks     []pkgspec.Document   `json:"runbooks,omitempty"`
}

func newShowCmd(app *App) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "show PACKAGE[@VERSION|@CHANNEL]",
		Short: "Show a package: versions by channel, configuration, dependencies",
		Long: `Show a package's description, its versions and which version each channel
points to, its configuration parameters (type, default, constraints), its
dependencies and what it exports to packages that depend on it. Without a
version, show the version of the stable channel.`,
		Example: `  berth show postgresql
  berth show postgresql@latest
  berth show airflow@2.10.3 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, _, err := app.catalogs()
			if err != nil {
				return err
			}
			f, version, _, err := pick(cmd.Context(), set, args[0])
			if err != nil {
				return err
			}
			if version == "" {
				return fmt.Errorf("show needs one version, not a range: use %s@VERSION or %s@CHANNEL", f.Entry.Name, f.Entry.Name)
			}
			p, _, err := set.Load(cmd.Context(), f, version)
			if err != nil {
				return err
			}
			sp := shownPackage{Catalog: f.Catalog, Name: p.Name, Version: p.Version, Description: p.Description, Homepage: p.Homepage,
				License: p.License, Maintainers: p.Maintainers, Channels: f.Entry.Channels, Rules: p.Rules, Dependencies: p.Dependencies,
				Outputs: p.Outputs, Health: p.Health, Runbooks: p.Runbooks, Config: []shownParam{}}
			if sp.Dependencies == nil {
				sp.Dependencies = []pkgspec.Dependency{}
			}
			for _, v := range f.Entry.Versions {
				sp.Versions = append(sp.Versions, v.Version)
			}
			for _, q := range p.Config {
				d := q.Default
				if q.IsSecret() && d != nil {
					d = mask
				}
				sp.Config = append(sp.Config, shownParam{Param: q, Default: d})
			}
			if out == outputJSON {
				return writeJSON(app.Out, sp)
			}
			return writeShow(app.Out, f.Entry, sp)
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func writeShow(w io.Writer, e *catalog.Entry, sp shownPackage) error {
	fmt.Fprintf(w, "%s %s (catalog %s)\n%s\n", sp.Name, sp.Version, sp.Catalog, sp.Description)
	if sp.Homepage != "" {
		fmt.Fprintf(w, "Homepage: %s\n", sp.Homepage)
	}
	if sp.License != "" {
		fmt.Fprintf(w, "License:  %s\n", sp.License)
	}
	fmt.Fprintf(w, "\nCHANNELS\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range e.ChannelNames() {
		fmt.Fprintf(tw, "  %s\t%s\n", c, e.Channels[c])
	}
	tw.Flush()
	fmt.Fprintf(w, "Versions: %s\n", strings.Join(sp.Versions, ", "))

	fmt.Fprintf(w, "\nCONFIGURATION\n")
	if len(sp.Config) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tTYPE\tDEFAULT\tCONSTRAINTS\tDESCRIPTION")
		for _, q := range sp.Config {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", q.Name, q.Type, showDefault(q), constraints(q.Param), q.Description)
		}
		tw.Flush()
	}
	if len(sp.Rules) > 0 {
		fmt.Fprintf(w, "\nRULES\n")
		for _, r := range sp.Rules {
			fmt.Fprintf(w, "  %s\n    %s\n", r.Rule, r.Message)
		}
	}
	fmt.Fprintf(w, "\nDEPENDENCIES\n")
	if len(sp.Dependencies) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, d := range sp.Dependencies {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", d.Key(), d.Package, d.Version, d.Kind)
		}
		tw.Flush()
	}
	if len(sp.Outputs) > 0 {
		fmt.Fprintf(w, "\nOUTPUTS\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, o := range sp.Outputs {
			fmt.Fprintf(tw, "  %s\t%s\n", o.Name, o.Description)
		}
		tw.Flush()
	}
	if len(sp.Health) > 0 {
		fmt.Fprintf(w, "\nHEALTH\n")
		for _, h := range sp.Health {
			status := h.Status
			if status == "" {
				status = "True"
			}
			fmt.Fprintf(w, "  %s %s is healthy when condition %s is %s\n", h.APIVersion, h.Kind, h.Condition, status)
		}
	}
	if len(sp.Runbooks) > 0 {
		fmt.Fprintf(w, "\nRUNBOOKS\n")
		for _, r := range sp.Runbooks {
			fmt.Fprintf(w, "  %s  %s\n", r.Name, r.Title)
		}
	}
	return nil
}

func showDefault(q shownParam) string {
	switch {
	case q.Generate != nil:
		return fmt.Sprintf("(generated, %d chars)", q.Generate.Length)
	case q.Default == nil:
		if q.Required {
			return "(required)"
		}
		return "-"
	case q.Default == "":
		return `""`
	}
	return fmt.Sprint(q.Default)
}

func constraints(q pkgspec.Param) string {
	var c []string
	if len(q.Values) > 0 {
		c = append(c, strings.Join(q.Values, "|"))
	}
	if q.Min != nil {
		c = append(c, fmt.Sprintf("min %v", q.Min))
	}
	if q.Max != nil {
		c = append(c, fmt.Sprintf("max %v", q.Max))
	}
	if q.Pattern != "" {
		c = append(c, "pattern "+q.Pattern)
	}
	if q.IsSecret() {
		c = append(c, "secret")
	}
	if q.When != "" {
		c = append(c, "when "+q.When)
	}
	if len(c) == 0 {
		return "-"
	}
	return strings.Join(c, ", ")
}

// seed returns the secret seed that 'berth template' derives generated values
// from, creating it on first use, so repeated runs print the same values.
func seed(home string) ([]byte, error) {
	p := filepath.Join(home, "generate.key")
	b, err := os.ReadFile(p)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return seed(home)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	return b, f.Close()
}

// setValue stores k=v in values; a dotted key (component.param) goes into the
// component's map.
func setValue(values map[string]any, kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return fmt.Errorf("--set %q: use NAME=VALUE, e.g. --set replicas=3", kv)
	}
	parts := strings.Split(k, ".")
	m := values
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = v
	return nil
}

func newTemplateCmd(app *App) *cobra.Command {
	var sets, valueFiles, apiVersions []string
	var name, namespace, kube string
	cmd := &cobra.Command{
		Use:   "template PACKAGE[@VERSION|@CHANNEL]",
		Short: "Render a package's Kubernetes objects without installing them",
		Long: `Resolve a package and its dependencies, check the configuration, and print the
Kubernetes objects berth would apply, as YAML, in apply order: the private
components first (at the versions of their stable channels where the
constraints allow), then the app; within each, the stages crds, pre (Helm
pre-install hooks), main and post (post-install hooks).

Shared dependencies (such as cert-manager) are installed as apps of their own
and are not printed; their outputs are computed as if installed with defaults
under their own name and namespace.

A value that breaks a parameter's type or a rule stops the command with an
error naming the parameter; nothing is printed. Generated values (passwords)
come from a secret seed in berth's home, so repeated runs print the same ones;
so do the passwords, keys and certificates charts generate themselves
(randAlphaNum, genCA...). Charts see the built-in API versions in
.Capabilities.APIVersions, plus those of --api-versions.
Set a component's values with its dependency name as prefix:
--set postgresql.storage=20Gi.`,
		Example: `  berth template postgresql
  berth template postgresql@latest --set storage=20Gi --name db --namespace data
  berth template airflow --values airflow.yaml --set postgresql.storage=50Gi`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			set, home, err := app.catalogs()
			if err != nil {
				return err
			}
			values, err := readValues(valueFiles, sets)
			if err != nil {
				return err
			}
			f, _, constraint, err := pick(ctx, set, args[0])
			if err != nil {
				return err
			}
			if name == "" {
				name = f.Entry.Name
			}
			if namespace == "" {
				namespace = "default"
			}
			u, prefer, err := set.Universe(ctx)
			if err != nil {
				return err
			}
			sol, err := resolve.Solve(u, resolve.Input{Requests: []resolve.Request{{App: name, Package: f.Entry.Name, Constraint: constraint}}, Prefer: prefer})
			if err != nil {
				return err
			}
			key, err := seed(home)
			if err != nil {
				return fmt.Errorf("the seed for generated values: %w", err)
			}
			mirrors, err := catalog.MirrorsFromEnv()
			if err != nil {
				return err
			}
			res, err := render.RenderApp(ctx, set.Loader(), render.AppInput{
				Solution: sol, App: name, Namespace: namespace, Values: values, KubeVersion: kube,
				Generator: func(scope string) pkgspec.Generator { return pkgspec.SeededGenerator(key, scope) },
				Charts:    (&catalog.ChartFetcher{Cache: filepath.Join(home, "charts"), Mirrors: mirrors}).Fetch,
				Seed:      key, APIVersions: apiVersions,
			})
			if err != nil {
				return err
			}
			return writeApp(app.Out, res)
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "set a parameter: NAME=VALUE, or COMPONENT.NAME=VALUE (repeatable)")
	cmd.Flags().StringArrayVarP(&valueFiles, "values", "f", nil, "read parameters from a YAML file (repeatable; --set wins)")
	cmd.Flags().StringVar(&name, "name", "", "app name (default: the package name)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default: default)")
	cmd.Flags().StringVar(&kube, "kube-version", render.DefaultKubeVersion, "Kubernetes version charts see")
	cmd.Flags().StringSliceVarP(&apiVersions, "api-versions", "a", nil, "API versions charts see in .Capabilities.APIVersions besides the built-in ones, such as monitoring.coreos.com/v1 (repeatable, comma-separated)")
	return cmd
}

func writeApp(w io.Writer, res *render.AppResult) error {
	shared := make([]string, 0, len(res.Shared))
	for _, d := range res.Shared {
		shared = append(shared, fmt.Sprintf("%s %s (install it as app %s in namespace %s)", d.Package, d.Version, d.App, d.Namespace))
	}
	sort.Strings(shared)
	for _, s := range shared {
		fmt.Fprintf(w, "# Needs the shared dependency %s\n", s)
	}
	for _, p := range res.Parts {
		fmt.Fprintf(w, "# %s %s %s as app %s\n", p.Role, p.Package, p.Version, p.App)
		for _, s := range p.Result.Skipped {
			fmt.Fprintf(w, "# Skipped hook: %s\n", s)
		}
		if err := p.Result.YAML(w); err != nil {
			return err
		}
	}
	return nil
}
