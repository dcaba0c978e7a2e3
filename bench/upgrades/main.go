// Command upgrades measures one upgrades check cycle (internal/upgrades) of a
// workspace of 1,000 apps against an HTTP catalog of 1,000 packages of 50
// versions each: wall and CPU time (this process and the git it runs), and
// the writes the cycle would make to the API server (a changed status) and
// to git (refs or objects) when nothing is new. See bench/README.md.
//
//	go run ./bench/upgrades [-apps 1000] [-packages 1000] [-versions 50] [-runs 5]
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/equality"
	sigsyaml "sigs.k8s.io/yaml"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/upgrades"
	"berth.dev/berth/internal/workspace"
)

func main() {
	apps := flag.Int("apps", 1000, "apps in the workspace")
	packages := flag.Int("packages", 1000, "packages in the catalog")
	versions := flag.Int("versions", 50, "versions per package")
	runs := flag.Int("runs", 5, "measured cycles with nothing new")
	flag.Parse()
	if err := run(*apps, *packages, *versions, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench/upgrades:", err)
		os.Exit(1)
	}
}

func run(nApps, nPackages, nVersions, runs int) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "berth-bench-upgrades-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	index, err := indexYAML(nPackages, nVersions)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(index)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	var requests, notModified atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Header.Get("If-None-Match") == etag {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		_, _ = w.Write(index)
	}))
	defer srv.Close()

	root := filepath.Join(tmp, "ws")
	if err := writeWorkspace(root, srv.URL, nApps, nPackages, nVersions); err != nil {
		return err
	}
	u := upgrades.New(upgrades.Options{CacheDir: filepath.Join(tmp, "cache")})
	target := upgrades.Target{Key: "bench/ws", URL: root, Branch: "main"}

	fmt.Printf("workspace: %d apps; catalog: %d packages x %d versions (index %.1f MB)\n", nApps, nPackages, nVersions, float64(len(index))/(1<<20))
	res, first, err := measure(func() (*upgrades.Result, error) { return u.Cycle(ctx, target, upgrades.Observed{}) })
	if err != nil {
		return err
	}
	fmt.Printf("first cycle (clone, index download and parse): wall %s, cpu %s\n", first.wall.Round(time.Millisecond), first.cpu.Round(time.Millisecond))
	if n := len(res.Status.Available); n != 0 {
		return fmt.Errorf("the workspace is up to date, yet %d upgrades are available", n)
	}
	status := res.Status
	refs, err := gitState(root)
	if err != nil {
		return err
	}
	var walls, cpus []time.Duration
	statusWrites, gitWrites := 0, 0
	for i := 0; i < runs; i++ {
		res, m, err := measure(func() (*upgrades.Result, error) {
			return u.Cycle(ctx, target, upgrades.Observed{Status: &status})
		})
		if err != nil {
			return err
		}
		walls, cpus = append(walls, m.wall), append(cpus, m.cpu)
		if !equality.Semantic.DeepEqual(&status, &res.Status) {
			statusWrites++
		}
		if now, err := gitState(root); err != nil {
			return err
		} else if now != refs {
			gitWrites++
		}
		status = res.Status
	}
	fmt.Printf("cycle with nothing new, %d runs: wall median %s (min %s, max %s), cpu median %s (min %s, max %s)\n", runs,
		median(walls), min(walls), max(walls), median(cpus), min(cpus), max(cpus))
	fmt.Printf("writes when nothing is new: API server (status changed) %d, git (refs or objects changed) %d; catalog requests %d, of which 304 %d\n",
		statusWrites, gitWrites, requests.Load(), notModified.Load())
	return nil
}

type measurement struct{ wall, cpu time.Duration }

// measure runs fn and returns its wall time and the CPU time of this process
// and of the processes it waited for (git).
func measure(fn func() (*upgrades.Result, error)) (*upgrades.Result, measurement, error) {
	before := cpuTime()
	start := time.Now()
	res, err := fn()
	return res, measurement{wall: time.Since(start), cpu: cpuTime() - before}, err
}

func cpuTime() time.Duration {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

// gitState is every ref of the repository and its object count: a write to
// git changes one of them.
func gitState(dir string) (string, error) {
	refs, err := exec.Command("git", "-C", dir, "for-each-ref", "--format=%(refname) %(objectname)").Output()
	if err != nil {
		return "", err
	}
	objs, err := exec.Command("git", "-C", dir, "count-objects", "-v").Output()
	if err != nil {
		return "", err
	}
	return string(refs) + string(objs), nil
}

func version(i int) string { return fmt.Sprintf("1.%d.0", i) }

// indexYAML is an HTTP catalog index: packages p0000..., each with versions
// 1.0.0 to 1.(n-1).0, stable at the newest.
func indexYAML(nPackages, nVersions int) ([]byte, error) {
	ix := catalog.Index{APIVersion: "berth.dev/v1alpha1", Kind: "CatalogIndex"}
	for p := 0; p < nPackages; p++ {
		e := catalog.Entry{Name: fmt.Sprintf("p%04d", p), Description: "a benchmark package", Channels: map[string]string{"stable": version(nVersions - 1)}}
		for v := nVersions - 1; v >= 0; v-- {
			d := sha256.Sum256([]byte(e.Name + version(v)))
			e.Versions = append(e.Versions, catalog.Version{Version: version(v), URL: e.Name + "-" + version(v) + ".tar.gz", Digest: "sha256:" + hex.EncodeToString(d[:])})
		}
		ix.Packages = append(ix.Packages, e)
	}
	return yaml.Marshal(ix)
}

// writeWorkspace commits a workspace of nApps apps, each following the
// stable channel of a package and locked at its newest version.
func writeWorkspace(root, catalogURL string, nApps, nPackages, nVersions int) error {
	cfg := workspace.Config{APIVersion: workspace.APIVersion, Kind: "Workspace", Defaults: workspace.Defaults{Channel: "stable"},
		Catalogs: []workspace.CatalogRef{{Name: "bench", Type: "http", URL: catalogURL}}}
	files := map[string]any{workspace.ConfigFile: cfg}
	lock := workspace.Lock{APIVersion: workspace.APIVersion, Kind: "Lock"}
	for i := 0; i < nApps; i++ {
		name, pkg := fmt.Sprintf("app-%04d", i), fmt.Sprintf("p%04d", i%nPackages)
		files[filepath.Join(workspace.AppDir(name), workspace.AppFile)] = workspace.App{APIVersion: workspace.APIVersion, Kind: "App",
			Name: name, Package: pkg, Channel: "stable", Namespace: name}
		lock.Instances = append(lock.Instances, workspace.LockInstance{Key: "app:" + name, Role: "app", Package: pkg, Version: version(nVersions - 1), Catalog: "bench"})
	}
	sort.Slice(lock.Instances, func(i, j int) bool { return lock.Instances[i].Key < lock.Instances[j].Key })
	files[workspace.LockFile] = lock
	for rel, v := range files {
		data, err := sigsyaml.Marshal(v)
		if err != nil {
			return err
		}
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"init", "--quiet", "--initial-branch=main"},
		{"add", "--all"},
		{"-c", "user.name=bench", "-c", "user.email=bench@berth.dev", "commit", "--quiet", "-m", "a workspace of " + fmt.Sprint(nApps) + " apps"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", root}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Millisecond)
}

func min(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		if x < m {
			m = x
		}
	}
	return m.Round(time.Millisecond)
}

func max(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		if x > m {
			m = x
		}
	}
	return m.Round(time.Millisecond)
}
