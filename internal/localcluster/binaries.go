package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// Names of the binaries a local cluster runs (kubectl is built alongside for users
// and benchmarks).
const (
	BinEtcd              = "etcd"
	BinAPIServer         = "kube-apiserver"
	BinControllerManager = "kube-controller-manager"
	BinScheduler         = "kube-scheduler"
	BinKubectl           = "kubectl"
	BinKwok              = "kwok"
)

// RequiredBinaries lists every binary a binaries directory must hold.
var RequiredBinaries = []string{BinEtcd, BinAPIServer, BinControllerManager, BinScheduler, BinKubectl, BinKwok}

// Versions pins the versions of the control plane components.
type Versions struct {
	Kubernetes string `json:"kubernetes"`
	Etcd       string `json:"etcd"`
	Kwok       string `json:"kwok"`
}

// DefaultVersions returns the versions berth is tested with.
func DefaultVersions() Versions {
	return Versions{Kubernetes: "v1.34.4", Etcd: "v3.5.21", Kwok: "v0.7.0"}
}

// Validate checks that every version is a full semantic version such as v1.34.4.
func (v Versions) Validate() error {
	for _, c := range []struct{ flag, value string }{
		{"kubernetes", v.Kubernetes}, {"etcd", v.Etcd}, {"kwok", v.Kwok},
	} {
		if !semver.IsValid(c.value) || semver.Canonical(c.value) != c.value {
			return fmt.Errorf("%s version %q is not a full semantic version like v1.2.3", c.flag, c.value)
		}
	}
	if semver.Major(v.Kubernetes) != "v1" {
		return fmt.Errorf("kubernetes version %q must be a v1.x.y release", v.Kubernetes)
	}
	return nil
}

// stagingVersion maps a Kubernetes version to the version of its staging modules
// (k8s.io/api and friends): v1.34.4 -> v0.34.4.
func (v Versions) stagingVersion() string {
	return "v0" + strings.TrimPrefix(v.Kubernetes, "v1")
}

func (v Versions) cacheKey() string {
	return fmt.Sprintf("kubernetes-%s_etcd-%s_kwok-%s", v.Kubernetes, v.Etcd, v.Kwok)
}

// DefaultCacheDir is where built binaries are kept: $XDG_CACHE_HOME/berth/localcluster
// (~/.cache/berth/localcluster on Linux).
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the user cache directory: %w", err)
	}
	return filepath.Join(dir, "berth", "localcluster"), nil
}

// BuildOptions says which binaries to build and where.
type BuildOptions struct {
	Versions Versions
	// CacheDir is the root of the binary cache; DefaultCacheDir when empty.
	CacheDir string
	// GoBinary is the go command to build with; "go" on PATH when empty.
	GoBinary string
	Progress ProgressFunc
}

// DefaultBuildOptions returns options for the default versions and cache.
func DefaultBuildOptions() BuildOptions {
	return BuildOptions{Versions: DefaultVersions()}
}

// ErrNoGoToolchain means binaries had to be built but no Go toolchain was found.
var ErrNoGoToolchain = errors.New("the Go toolchain is needed to build the control plane binaries on first use, but the go command was not found; install Go (https://go.dev/dl) or pass --binaries DIR with prebuilt " + strings.Join(RequiredBinaries, ", "))

// BuildError reports a failed build step with the log that holds its output.
type BuildError struct {
	Component string // "kubernetes v1.34.4"
	Step      string // "go build"
	Log       string
	Tail      string
	Err       error
}

func (e *BuildError) Error() string {
	msg := fmt.Sprintf("building %s failed at step %q: %v; full output in %s", e.Component, e.Step, e.Err, e.Log)
	if e.Tail != "" {
		msg += "\nlast lines:\n" + e.Tail
	}
	return msg
}

func (e *BuildError) Unwrap() error { return e.Err }

// MissingBinariesError reports a binaries directory that lacks some binaries.
type MissingBinariesError struct {
	Dir     string
	Missing []string
}

func (e *MissingBinariesError) Error() string {
	return fmt.Sprintf("binaries directory %s lacks %s; it must hold executable %s (build them once with 'berth up' without --binaries, which caches them)",
		e.Dir, strings.Join(e.Missing, ", "), strings.Join(RequiredBinaries, ", "))
}

// CheckBinaries verifies that dir holds every required binary, executable.
func CheckBinaries(dir string) error {
	var missing []string
	for _, name := range RequiredBinaries {
		if !isExecutable(filepath.Join(dir, name)) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return &MissingBinariesError{Dir: dir, Missing: missing}
	}
	return nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// EnsureBinaries returns a directory holding every required binary for
// opts.Versions, building the missing ones from the Go module proxy. Concurrent
// callers (several test binaries, say) wait for one another instead of building twice.
func EnsureBinaries(ctx context.Context, opts BuildOptions) (string, error) {
	if err := opts.Versions.Validate(); err != nil {
		return "", err
	}
	root := opts.CacheDir
	if root == "" {
		var err error
		if root, err = DefaultCacheDir(); err != nil {
			return "", err
		}
	}
	base := filepath.Join(root, opts.Versions.cacheKey())
	bin := filepath.Join(base, "bin")
	if CheckBinaries(bin) == nil {
		return bin, nil
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", fmt.Errorf("creating binary cache %s: %w", bin, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(base, ".lock"), opts.Progress)
	if err != nil {
		return "", err
	}
	defer unlock()

	b := &builder{opts: opts, base: base, bin: bin}
	for _, g := range b.groups() {
		if g.present() {
			continue
		}
		if b.goBin == "" {
			if b.goBin, err = findGo(opts.GoBinary); err != nil {
				return "", err
			}
		}
		detail := fmt.Sprintf("from the Go module proxy (first use only); log: %s", b.logPath(g.name))
		if err := step(opts.Progress, "build "+g.label, detail, func() error { return g.build(ctx) }); err != nil {
			return "", err
		}
	}
	return bin, CheckBinaries(bin)
}

func findGo(goBinary string) (string, error) {
	if goBinary == "" {
		goBinary = "go"
	}
	path, err := exec.LookPath(goBinary)
	if err != nil {
		return "", ErrNoGoToolchain
	}
	return path, nil
}

type builder struct {
	opts  BuildOptions
	base  string
	bin   string
	goBin string
}

type buildGroup struct {
	name     string
	label    string
	binaries []string
	build    func(ctx context.Context) error
	present  func() bool
}

func (b *builder) groups() []buildGroup {
	v := b.opts.Versions
	groups := []buildGroup{
		{name: "etcd", label: "etcd " + v.Etcd, binaries: []string{BinEtcd}, build: b.buildEtcd},
		{name: "kubernetes", label: "kubernetes " + v.Kubernetes,
			binaries: []string{BinAPIServer, BinControllerManager, BinScheduler, BinKubectl}, build: b.buildKubernetes},
		{name: "kwok", label: "kwok " + v.Kwok, binaries: []string{BinKwok}, build: b.buildKwok},
	}
	for i := range groups {
		g := &groups[i]
		g.present = func() bool {
			for _, name := range g.binaries {
				if !isExecutable(filepath.Join(b.bin, name)) {
					return false
				}
			}
			return true
		}
	}
	return groups
}

func (b *builder) logPath(group string) string {
	return filepath.Join(b.base, "logs", "build-"+group+".log")
}

// run executes one go command for a build group, appending its output to the
// group's log, and turns a failure into a BuildError naming the step.
func (b *builder) run(ctx context.Context, group, component, stepName, dir string, args ...string) ([]byte, error) {
	logPath := b.logPath(group)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n=== %s: %s %s (in %s)\n", time.Now().Format(time.RFC3339), b.goBin, strings.Join(args, " "), dir)

	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, b.goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod")
	cmd.Stdout = &stdout
	cmd.Stderr = logf
	if err := cmd.Run(); err != nil {
		_, _ = logf.Write(stdout.Bytes())
		_ = logf.Sync()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &BuildError{Component: component, Step: stepName, Log: logPath, Tail: tailFile(logPath, 15), Err: err}
	}
	return stdout.Bytes(), nil
}

// writeModule writes a throwaway module that pins the given requirements and
// imports the commands to build, so 'go mod tidy' records every dependency.
func writeModule(dir string, gomod []byte, commands []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var tools strings.Builder
	tools.WriteString("//go:build tools\n\npackage tools\n\nimport (\n")
	for _, c := range commands {
		fmt.Fprintf(&tools, "\t_ %q\n", c)
	}
	tools.WriteString(")\n")
	if err := writeFileAtomic(filepath.Join(dir, "go.mod"), gomod, 0o644); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "tools.go"), []byte(tools.String()), 0o644)
}

// install builds packages into a temporary directory and renames the results into
// the cache, so a binary in the cache is always complete.
func (b *builder) install(ctx context.Context, group, component, dir, ldflags string, outputs map[string]string) error {
	tmp, err := os.MkdirTemp(b.base, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pkgs := sortedKeys(outputs)
	args := []string{"build", "-ldflags", ldflags}
	if len(pkgs) == 1 {
		args = append(args, "-o", filepath.Join(tmp, outputs[pkgs[0]]))
	} else {
		// With several packages, go build names each binary after its package's
		// last path element, which outputs must match.
		args = append(args, "-o", tmp+string(os.PathSeparator))
	}
	args = append(args, pkgs...)
	if _, err := b.run(ctx, group, component, "go build", dir, args...); err != nil {
		return err
	}
	for _, name := range outputs {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(b.bin, name)); err != nil {
			return fmt.Errorf("installing %s into %s: %w", name, b.bin, err)
		}
	}
	return nil
}

func (b *builder) buildEtcd(ctx context.Context) error {
	v := b.opts.Versions.Etcd
	component := "etcd " + v
	dir := filepath.Join(b.base, "src", "etcd")
	const pkg = "go.etcd.io/etcd/server/v3"
	gomod := fmt.Sprintf("module berth.local/etcdbuild\n\ngo 1.23\n\nrequire %s %s\n", pkg, v)
	if err := writeModule(dir, []byte(gomod), []string{pkg}); err != nil {
		return err
	}
	if _, err := b.run(ctx, "etcd", component, "go mod tidy", dir, "mod", "tidy"); err != nil {
		return err
	}
	return b.install(ctx, "etcd", component, dir, "-s -w", map[string]string{pkg: BinEtcd})
}

func (b *builder) buildKubernetes(ctx context.Context) error {
	v := b.opts.Versions
	component := "kubernetes " + v.Kubernetes
	dir := filepath.Join(b.base, "src", "kubernetes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The kubernetes module replaces its staging modules (k8s.io/api, ...) with
	// directories in its own tree; a module that requires it must replace each with
	// the published v0.x.y of the same release instead.
	out, err := b.run(ctx, "kubernetes", component, "go mod download", dir, "mod", "download", "-json", "k8s.io/kubernetes@"+v.Kubernetes)
	if err != nil {
		return err
	}
	var dl struct{ GoMod, Error string }
	if err := json.Unmarshal(out, &dl); err != nil || dl.GoMod == "" {
		return &BuildError{Component: component, Step: "go mod download", Log: b.logPath("kubernetes"),
			Err: fmt.Errorf("no go.mod for k8s.io/kubernetes@%s: %s", v.Kubernetes, dl.Error)}
	}
	upstream, err := os.ReadFile(dl.GoMod)
	if err != nil {
		return err
	}
	// Parse, not ParseLax: the lax parser drops replace directives.
	mf, err := modfile.Parse(dl.GoMod, upstream, nil)
	if err != nil {
		return fmt.Errorf("parsing %s: %w", dl.GoMod, err)
	}
	var gomod strings.Builder
	fmt.Fprintf(&gomod, "module berth.local/kubernetesbuild\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n", mf.Go.Version, v.Kubernetes)
	staging := 0
	for _, r := range mf.Replace {
		if strings.HasPrefix(r.New.Path, "./staging/") {
			fmt.Fprintf(&gomod, "\t%s => %s %s\n", r.Old.Path, r.Old.Path, v.stagingVersion())
			staging++
		}
	}
	gomod.WriteString(")\n")
	if staging == 0 {
		return &BuildError{Component: component, Step: "go mod download", Log: b.logPath("kubernetes"),
			Err: fmt.Errorf("%s replaces no staging modules; this Kubernetes version cannot be built this way", dl.GoMod)}
	}
	cmds := map[string]string{
		"k8s.io/kubernetes/cmd/kube-apiserver":          BinAPIServer,
		"k8s.io/kubernetes/cmd/kube-controller-manager": BinControllerManager,
		"k8s.io/kubernetes/cmd/kube-scheduler":          BinScheduler,
		"k8s.io/kubernetes/cmd/kubectl":                 BinKubectl,
	}
	if err := writeModule(dir, []byte(gomod.String()), sortedKeys(cmds)); err != nil {
		return err
	}
	if _, err := b.run(ctx, "kubernetes", component, "go mod tidy", dir, "mod", "tidy"); err != nil {
		return err
	}
	major, minor, _ := strings.Cut(strings.TrimPrefix(semver.MajorMinor(v.Kubernetes), "v"), ".")
	var ldflags []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ldflags = append(ldflags,
			"-X", pkg+".gitVersion="+v.Kubernetes,
			"-X", pkg+".gitMajor="+major,
			"-X", pkg+".gitMinor="+minor,
			"-X", pkg+".gitTreeState=clean")
	}
	return b.install(ctx, "kubernetes", component, dir, strings.Join(append([]string{"-s", "-w"}, ldflags...), " "), cmds)
}

func (b *builder) buildKwok(ctx context.Context) error {
	v := b.opts.Versions.Kwok
	component := "kwok " + v
	dir := filepath.Join(b.base, "src", "kwok")
	const pkg = "sigs.k8s.io/kwok/cmd/kwok"
	gomod := fmt.Sprintf("module berth.local/kwokbuild\n\ngo 1.23\n\nrequire sigs.k8s.io/kwok %s\n", v)
	if err := writeModule(dir, []byte(gomod), []string{pkg}); err != nil {
		return err
	}
	if _, err := b.run(ctx, "kwok", component, "go mod tidy", dir, "mod", "tidy"); err != nil {
		return err
	}
	return b.install(ctx, "kwok", component, dir, "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version="+v, map[string]string{pkg: BinKwok})
}

// lockFile takes an exclusive advisory lock on path, waiting (and saying so) while
// another process holds it. The returned function releases it.
func lockFile(ctx context.Context, path string, progress ProgressFunc) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	announced := false
	start := time.Now()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !announced && progress != nil {
			progress(Event{Step: "wait for another berth process", Detail: "it holds " + path})
			announced = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if announced {
		progress(Event{Step: "wait for another berth process", Done: true, Elapsed: time.Since(start)})
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
