package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// UpOptions configures Up.
type UpOptions struct {
	Home string // state root; DefaultHome when empty
	Name string
	// Nodes is the number of simulated nodes; 0 keeps an existing cluster's count
	// (3 for a new one).
	Nodes int
	// Versions of a new cluster; zero keeps an existing cluster's (defaults for a
	// new one). Asking an existing cluster for other versions is an error.
	Versions Versions
	// BinDir holds prebuilt binaries; empty means build (once) into the cache.
	BinDir   string
	CacheDir string
	// APIServerPort fixes the API server port of a new cluster; 0 picks a free one.
	APIServerPort int
	Progress      ProgressFunc
}

// DefaultUpOptions returns options for the cluster named "dev".
func DefaultUpOptions() UpOptions { return UpOptions{Name: "dev"} }

// UpResult says what Up did.
type UpResult struct {
	Created        bool // the state directory was new
	AlreadyRunning bool // every process was up and ready already
	Started        []string
}

// PortInUseError reports a port that a component needs but another process holds.
type PortInUseError struct {
	Component string
	Port      int
	Err       error
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("%s cannot listen on 127.0.0.1:%d: the port is in use by another process (%v); stop that process, or create the cluster under another name (a new cluster picks free ports; --api-server-port picks the API server's)",
		e.Component, e.Port, e.Err)
}

func (e *PortInUseError) Unwrap() error { return e.Err }

// ProcessExitedError reports a component that exited while berth waited for it.
type ProcessExitedError struct {
	Component string
	Log       string
	Tail      string
}

func (e *ProcessExitedError) Error() string {
	return fmt.Sprintf("%s exited during start; full log in %s; last lines:\n%s", e.Component, e.Log, indent(e.Tail))
}

func indent(s string) string {
	if s == "" {
		return "    (the log is empty)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// Up creates a cluster, or restarts a stopped one with its data, and waits until
// the API server is ready and every node is Ready. Processes it starts are detached
// and outlive the caller. If start-up fails, the processes this call started are
// stopped again, and the error says which component failed and why.
func Up(ctx context.Context, opts UpOptions) (*Cluster, UpResult, error) {
	var res UpResult
	if opts.Home == "" {
		h, err := DefaultHome()
		if err != nil {
			return nil, res, err
		}
		opts.Home = h
	}
	if opts.Name == "" {
		opts.Name = DefaultUpOptions().Name
	}
	if err := ValidateName(opts.Name); err != nil {
		return nil, res, err
	}
	if opts.Nodes < 0 || opts.Nodes > 100 {
		return nil, res, fmt.Errorf("--nodes %d is out of range: use 1 to 100", opts.Nodes)
	}
	// Check everything the caller gave before touching the disk, so that bad
	// input leaves no trace.
	if opts.Versions != (Versions{}) {
		if err := opts.Versions.Validate(); err != nil {
			return nil, res, err
		}
	}
	if opts.BinDir != "" {
		if err := CheckBinaries(opts.BinDir); err != nil {
			return nil, res, err
		}
	}
	c := newCluster(opts.Home, opts.Name)
	_, statErr := os.Stat(c.Dir)
	isNew := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, res, fmt.Errorf("creating %s: %w", c.Dir, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(c.Dir, ".lock"), opts.Progress)
	if err != nil {
		return nil, res, err
	}
	defer unlock()

	if res.Created, err = c.prepareState(ctx, opts); err != nil {
		if isNew {
			_ = os.RemoveAll(c.Dir)
		}
		return nil, res, err
	}
	if err := c.ensureBinDir(ctx, opts); err != nil {
		return nil, res, err
	}
	if phaseOf(c.processes()) == PhaseRunning && probeAPIServer(ctx, c) == nil {
		res.AlreadyRunning = true
		// Still converge the node count, which the caller may have changed.
		err := c.ensureNodes(ctx, opts.Progress)
		return c, res, err
	}
	if err := c.prepareFiles(); err != nil {
		return nil, res, err
	}
	started, err := c.start(ctx, opts.Progress)
	res.Started = started
	if err == nil {
		err = c.ensureNodes(ctx, opts.Progress)
	}
	if err != nil {
		// Leave nothing running that this call started; the state stays for the
		// next attempt and the logs for the user.
		c.stop(context.WithoutCancel(ctx), started, nil)
		return nil, res, fmt.Errorf("cluster %q did not start: %w", c.Name, err)
	}
	return c, res, nil
}

// prepareState loads the recorded state, or creates it for a new cluster. A state
// directory left without cluster.json by a crash during creation is started over;
// one whose etcd holds data is reported as corrupt instead of being wiped.
func (c *Cluster) prepareState(ctx context.Context, opts UpOptions) (created bool, err error) {
	_, statErr := os.Stat(c.statePath())
	if statErr == nil {
		if err := c.loadState(); err != nil {
			return false, err
		}
		if opts.Versions != (Versions{}) && opts.Versions != c.State.Versions {
			return false, fmt.Errorf("cluster %q runs kubernetes %s (etcd %s, kwok %s), not the versions asked for; remove it with 'berth down --name %s --purge' first, or choose another --name",
				c.Name, c.State.Versions.Kubernetes, c.State.Versions.Etcd, c.State.Versions.Kwok, c.Name)
		}
		if opts.APIServerPort != 0 && opts.APIServerPort != c.State.Ports.APIServer {
			return false, fmt.Errorf("cluster %q already serves its API on port %d; --api-server-port applies to new clusters only", c.Name, c.State.Ports.APIServer)
		}
		if opts.Nodes != 0 {
			c.State.Nodes = opts.Nodes
		}
		return false, nil
	}
	if !errors.Is(statErr, os.ErrNotExist) {
		return false, statErr
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "etcd", "member")); err == nil {
		return false, &CorruptStateError{Cluster: c.Name, Path: c.statePath(), Err: errors.New("file is missing but etcd data exists")}
	}
	if phaseOf(c.processes()) != PhaseStopped {
		return false, &CorruptStateError{Cluster: c.Name, Path: c.statePath(), Err: errors.New("file is missing but processes of the cluster run")}
	}
	versions := opts.Versions
	if versions == (Versions{}) {
		versions = DefaultVersions()
	}
	if err := versions.Validate(); err != nil {
		return false, err
	}
	nodes := opts.Nodes
	if nodes == 0 {
		nodes = 3
	}
	ports, err := pickPorts(opts.APIServerPort)
	if err != nil {
		return false, err
	}
	c.State = State{Name: c.Name, Versions: versions, Nodes: nodes, Ports: ports, Created: time.Now().UTC()}
	unlock, err := c.allocateNetwork(ctx, opts.Home, opts.Progress)
	if err != nil {
		return false, err
	}
	defer unlock()
	return true, c.saveState()
}

// ensureBinDir settles where the binaries come from: the --binaries directory, the
// one recorded for this cluster if still complete, or the build cache.
func (c *Cluster) ensureBinDir(ctx context.Context, opts UpOptions) error {
	switch {
	case opts.BinDir != "":
		dir, err := filepath.Abs(opts.BinDir)
		if err != nil {
			return err
		}
		if err := CheckBinaries(dir); err != nil {
			return err
		}
		c.State.BinDir = dir
	case c.State.BinDir != "" && CheckBinaries(c.State.BinDir) == nil:
	default:
		dir, err := EnsureBinaries(ctx, BuildOptions{Versions: c.State.Versions, CacheDir: opts.CacheDir, Progress: opts.Progress})
		if err != nil {
			return err
		}
		c.State.BinDir = dir
	}
	return c.saveState()
}

// prepareFiles (re)creates everything derived from the state: certificates and
// keys that are missing or near expiry, kubeconfigs, the kwok configuration.
func (c *Cluster) prepareFiles() error {
	for _, d := range []string{"logs", "pids", "kubeconfigs", "kwok"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := ensurePKIFor(c.Name, c.pkiDir(), time.Now(), c.State.network().serviceIP()); err != nil {
		return err
	}
	if err := c.writeKubeconfigs(); err != nil {
		return err
	}
	if err := c.writeEgressConfig(); err != nil {
		return err
	}
	if err := writeFileAtomic(c.simulatedLogPath(), simulatedLog(c.State.Created), 0o644); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.Dir, "kwok.yaml"), c.kwokConfig(), 0o644)
}

// pickPorts reserves free loopback ports by listening on port 0 for all of them
// at once (so they differ), then releases them for the processes to take.
func pickPorts(apiServer int) (Ports, error) {
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	next := func() (int, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free loopback port: %w", err)
		}
		listeners = append(listeners, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	var p Ports
	var err error
	for _, f := range []*int{&p.Etcd, &p.EtcdPeer, &p.ControllerManager, &p.Scheduler, &p.Kwok, &p.Console} {
		if *f, err = next(); err != nil {
			return p, err
		}
	}
	if p.APIServer = apiServer; apiServer == 0 {
		if p.APIServer, err = next(); err != nil {
			return p, err
		}
	}
	return p, nil
}

// checkPort fails when a port cannot be bound on loopback.
func checkPort(component string, port int) error {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return &PortInUseError{Component: component, Port: port, Err: err}
	}
	return l.Close()
}

// start launches every component that does not already run, in order, waiting for
// each to be ready before the next. It returns the names of those it started.
func (c *Cluster) start(ctx context.Context, progress ProgressFunc) ([]string, error) {
	var started []string
	running := c.processes()
	for name, up := range running {
		if !up {
			_ = os.Remove(c.pidPath(name)) // stale: its process is gone
		}
	}
	for _, comp := range components() {
		if !running[comp.name] {
			for _, port := range comp.ports(c.State.Ports) {
				if err := checkPort(comp.name, port); err != nil {
					return started, err
				}
			}
			if comp.name == BinKwok {
				if err := c.ensureKwokRBAC(ctx); err != nil {
					return started, err
				}
			}
			bin := filepath.Join(c.State.BinDir, comp.name)
			if _, err := startDetached(bin, comp.args(c), c.Dir, c.logPath(comp.name), c.pidPath(comp.name)); err != nil {
				if errors.Is(err, errExitedAtOnce) {
					// As when it exits a moment later: its log says why.
					return started, &ProcessExitedError{Component: comp.name, Log: c.logPath(comp.name), Tail: lastRunTail(c.logPath(comp.name), 20)}
				}
				return started, err
			}
			started = append(started, comp.name)
		}
		if comp.probe == nil {
			continue
		}
		probe := comp.probe
		err := step(progress, "wait for "+comp.name, "", func() error {
			return c.waitFor(ctx, func(ctx context.Context) error { return probe(ctx, c) })
		})
		if err != nil {
			return started, err
		}
	}
	return started, nil
}

// waitFor polls check until it succeeds, failing early with the log tail when one
// of the cluster's processes has exited, and after a timeout with the last error.
func (c *Cluster) waitFor(ctx context.Context, check func(context.Context) error) error {
	const timeout = 3 * time.Minute
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		if err := c.checkProcesses(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("gave up after %s: %w (logs in %s)", timeout, last, filepath.Join(c.Dir, "logs"))
			}
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkProcesses returns a ProcessExitedError for the first component that has a
// pid file but no longer runs.
func (c *Cluster) checkProcesses() error {
	for _, comp := range components() {
		rec, err := readPIDFile(c.pidPath(comp.name))
		if err != nil {
			continue // not started yet
		}
		if !rec.alive() {
			return &ProcessExitedError{Component: comp.name, Log: c.logPath(comp.name), Tail: lastRunTail(c.logPath(comp.name), 20)}
		}
	}
	return nil
}

// DownOptions configures Down.
type DownOptions struct {
	Home  string
	Name  string
	Purge bool // also remove the state directory
}

// DownResult says what Down did.
type DownResult struct {
	Stopped []string
	Purged  bool
}

// Down stops a cluster's processes, by their recorded pids, in reverse start order
// (etcd last), each with a grace period and then SIGKILL. With Purge it also
// removes the cluster's state. It works on clusters whose state is corrupt.
func Down(ctx context.Context, opts DownOptions) (DownResult, error) {
	var res DownResult
	if opts.Home == "" {
		h, err := DefaultHome()
		if err != nil {
			return res, err
		}
		opts.Home = h
	}
	if err := ValidateName(opts.Name); err != nil {
		return res, err
	}
	c := newCluster(opts.Home, opts.Name)
	if _, err := os.Stat(c.Dir); errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("%w: no cluster named %q in %s ('berth cluster list' shows the clusters)", ErrNotFound, opts.Name, clustersDir(opts.Home))
	}
	unlock, err := lockFile(ctx, filepath.Join(c.Dir, ".lock"), nil)
	if err != nil {
		return res, err
	}
	defer unlock()
	var names []string
	for _, comp := range components() {
		names = append(names, comp.name)
	}
	var errs []error
	onErr := func(err error) { errs = append(errs, err) }
	// Add-ons (the local controller) first: they talk to the API server.
	res.Stopped = c.stopAddons(ctx, onErr)
	res.Stopped = append(res.Stopped, c.stop(ctx, names, onErr)...)
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if opts.Purge {
		if err := os.RemoveAll(c.Dir); err != nil {
			return res, fmt.Errorf("removing %s: %w", c.Dir, err)
		}
		res.Purged = true
	}
	return res, nil
}

// DownAll stops every cluster under home (and purges each when purge is set),
// going on past failures and returning them all.
func DownAll(ctx context.Context, home string, purge bool) (map[string]DownResult, error) {
	entries, err := os.ReadDir(clustersDir(home))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	results := map[string]DownResult{}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		res, err := Down(ctx, DownOptions{Home: home, Name: e.Name(), Purge: purge})
		if errors.Is(err, ErrNotFound) {
			// Removed since the listing (a purge of its own, running while
			// this one did): nothing is left to stop.
			continue
		}
		results[e.Name()] = res
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %q: %w", e.Name(), err))
		}
	}
	return results, errors.Join(errs...)
}

// stop stops the named components in reverse start order and removes their pid
// files. It returns the names of those that were running.
func (c *Cluster) stop(ctx context.Context, names []string, onErr func(error)) []string {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var stopped []string
	comps := components()
	for i := len(comps) - 1; i >= 0; i-- {
		comp := comps[i]
		if !want[comp.name] {
			continue
		}
		rec, err := readPIDFile(c.pidPath(comp.name))
		if err != nil {
			// A missing pid file means nothing to stop; an unreadable one names no
			// process we could stop safely.
			_ = os.Remove(c.pidPath(comp.name))
			continue
		}
		wasRunning := rec.alive()
		if err := stopProcess(ctx, rec, comp.grace); err != nil {
			if onErr != nil {
				onErr(fmt.Errorf("stopping %s: %w", comp.name, err))
			}
			continue
		}
		_ = os.Remove(c.pidPath(comp.name))
		if wasRunning {
			stopped = append(stopped, comp.name)
		}
	}
	return stopped
}
