package upgrades

import (
	"context"
	"path/filepath"

	"berth.dev/berth/internal/secrets"
)

// Checkout is a working clone of a Workspace's repository that another part
// of the controller commits in (the console it serves): the clone the
// upgrades loop makes, with the same credentials given to git through its
// environment only, kept on the followed branch as the remote has it.
type Checkout struct {
	cl   *clone
	key  *secrets.Key
	opts Options
}

// NewCheckout returns the checkout of t in dir; Sync makes it. opts gives
// the berth binary for the secrets filter and the identity that commits.
func NewCheckout(dir string, t Target, opts Options) *Checkout {
	if t.Branch == "" {
		t.Branch = "main"
	}
	d := DefaultOptions()
	if opts.AuthorName == "" {
		opts.AuthorName, opts.AuthorEmail = d.AuthorName, d.AuthorEmail
	}
	if opts.CacheDir == "" {
		opts.CacheDir = filepath.Dir(dir)
	}
	return &Checkout{cl: &clone{dir: dir, url: t.URL, branch: t.Branch, path: t.Path, auth: t.Auth, author: [2]string{opts.AuthorName, opts.AuthorEmail}},
		key: t.Decryption, opts: opts}
}

// Root is the workspace's directory in the checkout.
func (k *Checkout) Root() string { return k.cl.root() }

// Branch is the branch the checkout follows.
func (k *Checkout) Branch() string { return k.cl.branch }

// Sync clones the repository, or fetches it and puts the checkout on the
// branch as fetched: a commit that was not pushed is dropped.
func (k *Checkout) Sync(ctx context.Context) error { return k.cl.sync(ctx, k.key, &k.opts) }

// Head is the commit the checkout is at; "" before the first Sync.
func (k *Checkout) Head(ctx context.Context) string { return k.cl.rev(ctx, "HEAD") }

// Fetch fetches refspecs from the remote with the checkout's credential.
func (k *Checkout) Fetch(ctx context.Context, refspecs ...string) error {
	_, err := k.cl.git(ctx, append([]string{"fetch", "--quiet", "--prune", "origin"}, refspecs...)...)
	return err
}

// Push pushes HEAD to the followed branch (a fast-forward, never forced). A
// *ReadOnlyError says the credential may not push; the checkout is then put
// back on the branch as the remote has it, so that it holds nothing the
// remote does not.
func (k *Checkout) Push(ctx context.Context) error {
	err := k.cl.push(ctx, k.cl.branch, false)
	if err != nil {
		_ = k.cl.reset(ctx)
		return err
	}
	// The remote now has HEAD: record it as fetched, so the next Sync
	// needs no reset.
	_, _ = k.cl.git(ctx, "update-ref", "refs/remotes/origin/"+k.cl.branch, "HEAD")
	return nil
}
