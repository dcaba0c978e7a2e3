package cli

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/packagetest"
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
