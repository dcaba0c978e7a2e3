package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// gitAuth is what a Workspace's secretRef holds.
type gitAuth struct {
	Username   string
	Password   string
	Identity   []byte
	KnownHosts []byte
}

// method returns the go-git auth method for url, or nil for none.
func (a gitAuth) method(url string) (transport.AuthMethod, error) {
	ssh := strings.HasPrefix(url, "ssh://") || (!strings.Contains(url, "://") && strings.Contains(url, "@"))
	switch {
	case ssh && len(a.Identity) > 0:
		user := a.Username
		if user == "" {
			user = "git"
			if ep, err := transport.NewEndpoint(url); err == nil && ep.User != "" {
				user = ep.User
			}
		}
		keys, err := gitssh.NewPublicKeys(user, a.Identity, a.Password)
		if err != nil {
			return nil, fmt.Errorf("the SSH identity in the git credentials Secret cannot be parsed (want an unencrypted PEM or OpenSSH private key under %q): %w", "identity", err)
		}
		if len(a.KnownHosts) == 0 {
			return nil, errors.New("the git credentials Secret has an SSH identity but no known_hosts: add the server's host key lines under \"known_hosts\" (ssh-keyscan HOST)")
		}
		cb, err := knownHostsCallback(a.KnownHosts)
		if err != nil {
			return nil, err
		}
		keys.HostKeyCallback = cb
		return keys, nil
	case a.Password != "":
		user := a.Username
		if user == "" {
			user = "git"
		}
		return &githttp.BasicAuth{Username: user, Password: a.Password}, nil
	}
	return nil, nil
}

func knownHostsCallback(lines []byte) (ssh.HostKeyCallback, error) {
	f, err := os.CreateTemp("", "berth-known-hosts-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(lines); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	cb, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, fmt.Errorf("the known_hosts in the git credentials Secret cannot be parsed: %w", err)
	}
	return cb, nil
}

// fetched is the tip of a branch after a fetch. close releases the cache's
// open files.
type fetched struct {
	repo   *git.Repository
	commit *object.Commit
	close  func() error
}

// fetch brings the bare clone in dir up to date with branch of url and returns
// the branch's tip commit. Only new objects cross the network. The caller
// closes what it returns.
func fetch(ctx context.Context, dir, url, branch string, auth gitAuth) (*fetched, error) {
	am, err := auth.method(url)
	if err != nil {
		return nil, err
	}
	repo, st, err := openCache(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the git cache %s (delete it to start afresh): %w", dir, err)
	}
	f, err := fetchInto(ctx, repo, url, branch, am)
	if err != nil {
		st.Close()
		return nil, err
	}
	f.close = st.Close
	return f, nil
}

// openCache opens (or creates) the bare repository in dir. Its storage keeps
// the packfiles open and trusts that only this process changes them: reading
// a commit of a thousand apps reads tens of thousands of objects, and go-git
// otherwise opens the packfile and its index again for each.
func openCache(dir string) (*git.Repository, *filesystem.Storage, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	st := filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRUDefault(),
		filesystem.Options{ExclusiveAccess: true, KeepDescriptors: true})
	repo, err := git.Open(st, nil)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.Init(st, nil)
	}
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return repo, st, nil
}

func fetchInto(ctx context.Context, repo *git.Repository, url, branch string, am transport.AuthMethod) (*fetched, error) {
	remote, err := repo.Remote("origin")
	if err == nil && remote.Config().URLs[0] != url {
		if err := repo.DeleteRemote("origin"); err != nil {
			return nil, err
		}
		remote, err = nil, git.ErrRemoteNotFound
	}
	if errors.Is(err, git.ErrRemoteNotFound) {
		remote, err = repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{url}})
	}
	if err != nil {
		return nil, err
	}
	local := plumbing.NewRemoteReferenceName("origin", branch)
	spec := gitconfig.RefSpec(fmt.Sprintf("+%s:%s", plumbing.NewBranchReferenceName(branch), local))
	err = remote.FetchContext(ctx, &git.FetchOptions{RefSpecs: []gitconfig.RefSpec{spec}, Auth: am, Force: true, Tags: git.NoTags})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, fetchError(url, branch, err)
	}
	ref, err := repo.Reference(local, true)
	if err != nil {
		return nil, fmt.Errorf("branch %q of %s: not found after fetching; check spec.branch: %w", branch, url, err)
	}
	commit, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("reading commit %s of %s: %w", ref.Hash(), url, err)
	}
	return &fetched{repo: repo, commit: commit}, nil
}

func fetchError(url, branch string, err error) error {
	var ne net.Error
	var noRef git.NoMatchingRefSpecError
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("fetching %s: the server refused the credentials; check the Secret named by spec.secretRef: %w", url, err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("fetching %s: no repository there; check spec.url: %w", url, err)
	case errors.As(err, &noRef):
		return fmt.Errorf("fetching %s: no branch %q; check spec.branch: %w", url, branch, err)
	case errors.As(err, &ne):
		return fmt.Errorf("fetching %s: git server unreachable; the last applied state stays and the fetch is retried: %w", url, err)
	}
	return fmt.Errorf("fetching %s: %w", url, err)
}
