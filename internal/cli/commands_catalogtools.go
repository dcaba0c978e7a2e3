package cli

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/packagetest"
	"berth.dev/berth/internal/workspace"
)

// The tools of package authors: berth catalog index and promote, berth
// package lint and test (internal/packagetest).

func newCatalogIndexCmd(app *App) *cobra.Command {
	var out, base string
	cmd := &cobra.Command{
		Use:   "index DIR",
		Short: "Build an HTTP catalog (index plus archives) from a directory catalog",
		Long: `Read the directory catalog DIR (NAME/VERSION/package.yaml, NAME/channels.yaml),
check every package, and write an HTTP catalog into OUT: an index.yaml listing
each package's versions, channels and dependencies, and one archive
NAME-VERSION.tar.gz per package version with its sha256 in the index. Serve OUT
with any static web server and add it with 'berth catalog add NAME URL'.

Archives are deterministic: the same package always gives the same bytes and
digest. A package version that cannot be used (it does not load, holds a link,
its channel points nowhere) stops the command: a published catalog never
leaves a package out silently. Archive URLs are relative to the index unless
--url gives the base URL they are served from.`,
		Example: `  berth catalog index ./catalog -o ./public
  berth catalog index ./catalog -o ./public --url https://charts.example.com/berth`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("%s is not a directory catalog: %v", dir, errOrNotDir(err))
			}
			if base != "" {
				u, err := url.Parse(base)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return fmt.Errorf("--url %q: use the http:// or https:// URL OUT is served from", base)
				}
			}
			ix, err := catalog.WriteHTTPAt(cmd.Context(), os.DirFS(dir), dir, out, base)
			if err != nil {
				return err
			}
			archives := 0
			for _, e := range ix.Packages {
				archives += len(e.Versions)
			}
			_, err = fmt.Fprintf(app.Out, "Wrote %s with %d packages and %d archives.\n", filepath.Join(out, catalog.IndexFile), len(ix.Packages), archives)
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "public", "directory to write the HTTP catalog into")
	cmd.Flags().StringVar(&base, "url", "", "base URL the archives are served from (default: relative to the index)")
	return cmd
}

func errOrNotDir(err error) error {
	if err != nil {
		return err
	}
	return errors.New("not a directory")
}

func newCatalogPromoteCmd(app *App) *cobra.Command {
	var dir, channel string
	var out output
	cmd := &cobra.Command{
		Use:   "promote PACKAGE VERSION --channel CHANNEL",
		Short: "Point a channel of a directory catalog at a tested version",
		Long: `Move CHANNEL of PACKAGE in the directory catalog (--catalog, default the current
directory) to VERSION by rewriting PACKAGE/channels.yaml, only when VERSION's
package test report (PACKAGE/VERSION.test-report.json, written by
'berth package test') passed and was made of the package as it is now: a
package edited after its test must be tested again. The file is replaced
atomically and keeps its comments; on refusal nothing changes.`,
		Example: `  berth catalog promote redis 7.4.2 --channel stable --catalog ./catalog`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := packagetest.Promote(cmd.Context(), packagetest.PromoteOptions{Catalog: dir, Package: args[0], Version: args[1], Channel: channel})
			var refused *packagetest.RefusedError
			if errors.As(err, &refused) {
				return fmt.Errorf("%w; test it with 'berth package test %s' and promote again", err, filepath.Join(dir, args[0], args[1]))
			}
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(app.Out, res)
			}
			from := res.From
			if from == "" {
				from = "nothing"
			}
			_, err = fmt.Fprintf(app.Out, "Channel %s of %s: %s -> %s (%s).\n", res.Channel, args[0], from, res.To, res.File)
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "catalog", ".", "the directory catalog")
	cmd.Flags().StringVar(&channel, "channel", "", "the channel to move, such as stable")
	_ = cmd.MarkFlagRequired("channel")
	addOutputFlag(cmd, &out)
	return cmd
}

func newPackageCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "package",
		Short: "Check and test a package before publishing it",
		Long: `Tools for package authors: 'package lint' checks a package without a cluster,
'package test' installs, redeploys, upgrades and uninstalls it on a cluster and
writes a report that 'catalog promote' requires. See docs/packages.md.`,
	}
	cmd.AddCommand(newPackageLintCmd(app), newPackageTestCmd(app))
	return cmd
}

func newPackageLintCmd(app *App) *cobra.Command {
	var out output
	var kube string
	cmd := &cobra.Command{
		Use:   "lint DIR",
		Short: "Check a package: schema, rendering, parameters, health rules, upgrade metadata",
		Long: `Check the package in DIR without a cluster:

  schema   package.yaml loads and validates (the checks every berth command makes)
  render   it renders, with its components, with the defaults and with every value
           of every enum parameter (required parameters get a sample value)
  unused   every parameter is used by a values template or an output
  health   every health rule names a kind the package renders or defines (CRD)
  upgrade  dependency constraints match versions in the catalogs; when DIR is
           CATALOG/NAME/VERSION, the upgrade metadata agrees with the catalog's
           earlier version (a breaking version has one to break from, a new
           major version has a note, a note is not set where it is never shown)
  promql   alert expressions and panel queries parse with Prometheus's parser
  catalog  the catalog lists the package (directory names, channels.yaml)

Each finding names the file, line and field. Errors make the command exit 1;
warnings do not.`,
		Example: `  berth package lint catalog/redis/7.4.2
  berth package lint ./mypackage -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := app.home()
			if err != nil {
				return err
			}
			res, err := packagetest.Lint(cmd.Context(), packagetest.LintOptions{Dir: args[0], ChartCache: filepath.Join(home, "charts"), KubeVersion: kube})
			if err != nil {
				return err
			}
			if out == outputJSON {
				if err := writeJSON(app.Out, res); err != nil {
					return err
				}
			} else {
				for _, f := range res.Findings {
					fmt.Fprintln(app.Out, f)
				}
				fmt.Fprintf(app.Out, "%s: %d errors, %d warnings.\n", args[0], res.Errors(), len(res.Findings)-res.Errors())
			}
			if res.Errors() > 0 {
				return &exitCodeError{code: 1}
			}
			return nil
		},
	}
	addOutputFlag(cmd, &out)
	cmd.Flags().StringVar(&kube, "kube-version", "", "Kubernetes version charts see (default: berth's)")
	return cmd
}

func newPackageTestCmd(app *App) *cobra.Command {
	var out output
	var from, kubeconfig, kubeContext, kube string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "test DIR [--from VERSION]",
		Short: "Install, redeploy, upgrade and uninstall a package on a cluster, and record a report",
		Long: `Test the package in DIR on a cluster (the current kubeconfig context, such as
the local cluster of 'berth up'), through the same steps as berth install,
deploy, upgrade and uninstall, in a throwaway workspace in a temporary
directory:

  render     the package renders with its components
  dry-run    install, with the server-side dry run of every object
  install    deploy until every object is healthy
  redeploy   deploy again: zero writes to the cluster
  uninstall  uninstall with --delete-data: nothing of the app is left
  upgrade    install the previous version of the catalog (or --from), deploy it,
             upgrade it to this version and deploy until healthy; across a
             breaking boundary, berth must refuse the upgrade

Required parameters without a default get a sample value. The report (JSON:
each step's result and time, the package's digest, berth's version) is written
next to the package, as DIR.test-report.json, and printed with -o json;
'berth catalog promote' requires it to have passed. Exit 1 when a step failed.`,
		Example: `  berth package test catalog/redis/7.4.2
  berth package test catalog/postgresql/17.2.0 --from 16.4.0 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := app.home()
			if err != nil {
				return err
			}
			exe, err := filterExecutable()
			if err != nil {
				return err
			}
			dir := args[0]
			rep, err := packagetest.Run(cmd.Context(), packagetest.RunOptions{
				Dir: dir, From: from, Executable: exe, ChartCache: filepath.Join(home, "charts"),
				Cluster:     clusterConfig(workspace.ClusterRef{Kubeconfig: kubeconfig, Context: kubeContext}),
				KubeVersion: kube, Timeout: timeout,
				OnStep: func(s packagetest.Step) {
					if out == outputText {
						fmt.Fprintln(app.Out, stepLine(s))
					}
				},
			})
			if err != nil {
				return err
			}
			path := packagetest.ReportPath(dir)
			if err := packagetest.WriteReport(path, rep); err != nil {
				return err
			}
			if out == outputJSON {
				if err := writeJSON(app.Out, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(app.Out, "%s %s %s; report: %s\n", rep.Package, rep.Version, rep.Status, path)
			}
			if !rep.Passed() {
				return &exitCodeError{code: 1}
			}
			return nil
		},
	}
	addOutputFlag(cmd, &out)
	cmd.Flags().StringVar(&from, "from", "", "version to test the upgrade from (default: the previous version in the catalog; none to skip)")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to test on (default: KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&kubeContext, "context", "", "kubeconfig context (default: the current one)")
	cmd.Flags().StringVar(&kube, "kube-version", "", "Kubernetes version charts see (default: berth's)")
	cmd.Flags().DurationVar(&timeout, "timeout", packagetest.DefaultTimeout, "how long each deploy may wait for health")
	return cmd
}

func stepLine(s packagetest.Step) string {
	line := fmt.Sprintf("%-10s %-7s %6.1fs", s.Name, s.Status, s.Seconds)
	if s.Detail != "" {
		line += "  " + s.Detail
	}
	if s.Error != "" {
		line += "  " + s.Error
	}
	return line
}
