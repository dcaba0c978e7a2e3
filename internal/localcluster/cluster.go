package localcluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// State is what berth records about a cluster in cluster.json.
type State struct {
	Name     string    `json:"name"`
	Versions Versions  `json:"versions"`
	Nodes    int       `json:"nodes"`
	Ports    Ports     `json:"ports"`
	BinDir   string    `json:"binDir"`
	Created  time.Time `json:"created"`
	// Network is the cluster's pod and service ranges; absent for clusters
	// made before ranges were recorded (see State.network).
	Network *Network `json:"network,omitempty"`
}

// Ports are the loopback ports a cluster's processes listen on.
type Ports struct {
	APIServer         int `json:"apiServer"`
	Etcd              int `json:"etcd"`
	EtcdPeer          int `json:"etcdPeer"`
	ControllerManager int `json:"controllerManager"`
	Scheduler         int `json:"scheduler"`
	// Kwok is the port of kwok's kubelet server, where the API server reads pod
	// logs. Zero in clusters created before berth served logs: they run without.
	Kwok int `json:"kwok,omitempty"`
	// Console is where the cluster's controller serves its console when it
	// runs as a local process (berth bootstrap --local): a port-forward to
	// a pod's port ConsolePodPort reaches it (kwok forwards it), and 'berth
	// console --port-forward' connects to it directly. Zero in clusters
	// created before.
	Console int `json:"console,omitempty"`
}

func (p Ports) all() []int {
	all := []int{p.APIServer, p.Etcd, p.EtcdPeer, p.ControllerManager, p.Scheduler}
	if p.Kwok != 0 {
		all = append(all, p.Kwok)
	}
	return all
}

// Cluster is a local cluster's state directory, and its recorded state once loaded.
type Cluster struct {
	Name  string
	Dir   string
	State State
}

// DefaultHome is where berth keeps its state: $BERTH_HOME, or ~/.berth.
func DefaultHome() (string, error) {
	if h := os.Getenv("BERTH_HOME"); h != "" {
		return h, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the home directory (set BERTH_HOME instead): %w", err)
	}
	return filepath.Join(home, ".berth"), nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$`)

// ValidateName checks a cluster name: lowercase letters, digits and dashes, at most
// 40 characters, starting and ending with a letter or digit.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("cluster name %q is invalid: use lowercase letters, digits and '-', at most 40 characters, starting and ending with a letter or digit", name)
	}
	return nil
}

// ErrNotFound is returned for a cluster with no state directory.
var ErrNotFound = errors.New("cluster not found")

func clustersDir(home string) string { return filepath.Join(home, "clusters") }

func newCluster(home, name string) *Cluster {
	return &Cluster{Name: name, Dir: filepath.Join(clustersDir(home), name)}
}

// Open loads the recorded state of an existing cluster.
func Open(home, name string) (*Cluster, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	c := newCluster(home, name)
	if _, err := os.Stat(c.Dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no cluster named %q in %s; create it with 'berth up --name %s'", ErrNotFound, name, clustersDir(home), name)
	}
	if err := c.loadState(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) statePath() string { return filepath.Join(c.Dir, "cluster.json") }
func (c *Cluster) pkiDir() string    { return filepath.Join(c.Dir, "pki") }
func (c *Cluster) logPath(n string) string {
	return filepath.Join(c.Dir, "logs", n+".log")
}
func (c *Cluster) pidPath(n string) string {
	return filepath.Join(c.Dir, "pids", n+".pid")
}
func (c *Cluster) componentKubeconfig(n string) string {
	return filepath.Join(c.Dir, "kubeconfigs", n+".kubeconfig")
}

// KubeconfigPath is the admin kubeconfig of the cluster.
func (c *Cluster) KubeconfigPath() string { return filepath.Join(c.Dir, "kubeconfig") }

// APIServerURL is the URL of the cluster's API server.
// ConsoleAddr is the loopback address where the local controller serves
// its console (Ports.Console); "" for a cluster created before it had one.
func (c *Cluster) ConsoleAddr() string {
	if c.State.Ports.Console == 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(c.State.Ports.Console)
}

func (c *Cluster) APIServerURL() string { return url(c.State.Ports.APIServer) }

// RESTConfig returns an admin client configuration for the cluster.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.KubeconfigPath())
	if err != nil {
		return nil, fmt.Errorf("cluster %q: reading %s: %w", c.Name, c.KubeconfigPath(), err)
	}
	return cfg, nil
}

func (c *Cluster) loadState() error {
	data, err := os.ReadFile(c.statePath())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &CorruptStateError{Cluster: c.Name, Path: c.statePath(), Err: errors.New("file is missing")}
		}
		return err
	}
	var s State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return &CorruptStateError{Cluster: c.Name, Path: c.statePath(), Err: err}
	}
	if err := s.validate(c.Name); err != nil {
		return &CorruptStateError{Cluster: c.Name, Path: c.statePath(), Err: err}
	}
	c.State = s
	return nil
}

func (s State) validate(name string) error {
	if s.Name != name {
		return fmt.Errorf("it names cluster %q", s.Name)
	}
	if err := s.Versions.Validate(); err != nil {
		return err
	}
	if s.Nodes < 1 {
		return fmt.Errorf("nodes is %d, want at least 1", s.Nodes)
	}
	seen := map[int]bool{}
	for _, p := range s.Ports.all() {
		if p <= 0 || p > 65535 || seen[p] {
			return fmt.Errorf("ports %+v are not distinct valid ports", s.Ports)
		}
		seen[p] = true
	}
	if s.Network != nil {
		return s.Network.validate()
	}
	return nil
}

func (c *Cluster) saveState() error {
	data, err := json.MarshalIndent(c.State, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(c.statePath(), append(data, '\n'), 0o644)
}

// Phase summarises whether a cluster's processes run.
type Phase string

// Phases of a cluster.
const (
	PhaseRunning  Phase = "running"
	PhaseStopped  Phase = "stopped"
	PhaseDegraded Phase = "degraded" // some processes run, others do not
	PhaseCorrupt  Phase = "corrupt"  // the state cannot be read
)

func (p Phase) String() string { return string(p) }

// Status describes a cluster for listings.
type Status struct {
	Name       string          `json:"name"`
	Phase      Phase           `json:"state"`
	Kubernetes string          `json:"kubernetesVersion,omitempty"`
	APIServer  string          `json:"apiServer,omitempty"`
	Nodes      int             `json:"nodes,omitempty"`
	Kubeconfig string          `json:"kubeconfig,omitempty"`
	Processes  map[string]bool `json:"processes,omitempty"`
	Network    *Network        `json:"network,omitempty"`
	// Addons are the cluster's add-ons (local controller, Prometheus, ...).
	Addons map[string]bool `json:"addons,omitempty"`
	// Prometheus and Alertmanager are the URLs of the cluster's monitoring,
	// when it ever ran with it.
	Prometheus   string `json:"prometheus,omitempty"`
	Alertmanager string `json:"alertmanager,omitempty"`
	Error        string `json:"error,omitempty"`
}

// processes reports which components run, by their recorded pids.
func (c *Cluster) processes() map[string]bool {
	running := map[string]bool{}
	for _, comp := range components() {
		rec, err := readPIDFile(c.pidPath(comp.name))
		running[comp.name] = err == nil && rec.alive()
	}
	return running
}

func phaseOf(running map[string]bool) Phase {
	n := 0
	for _, up := range running {
		if up {
			n++
		}
	}
	switch n {
	case 0:
		return PhaseStopped
	case len(running):
		return PhaseRunning
	default:
		return PhaseDegraded
	}
}

// Status reports the cluster's phase from its recorded processes.
func (c *Cluster) Status() Status {
	running := c.processes()
	net := c.State.network()
	st := Status{
		Name:       c.Name,
		Phase:      phaseOf(running),
		Kubernetes: c.State.Versions.Kubernetes,
		APIServer:  c.APIServerURL(),
		Nodes:      c.State.Nodes,
		Kubeconfig: c.KubeconfigPath(),
		Processes:  running,
		Network:    &net,
		Addons:     c.AddonsRunning(),
	}
	if m, err := c.Monitoring(); err == nil && m != nil {
		st.Prometheus, st.Alertmanager = m.PrometheusURL(), m.AlertmanagerURL()
	}
	return st
}

// List reports every cluster under home, sorted by name.
func List(home string) ([]Status, error) {
	entries, err := os.ReadDir(clustersDir(home))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Status
	for _, e := range entries {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		c := newCluster(home, e.Name())
		if err := c.loadState(); err != nil {
			out = append(out, Status{Name: e.Name(), Phase: PhaseCorrupt, Processes: c.processes(), Error: err.Error()})
			continue
		}
		out = append(out, c.Status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
