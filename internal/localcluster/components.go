package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// component is one control plane process: how to run it and how to tell it is ready.
type component struct {
	name string
	// ports returns the loopback ports the process listens on.
	ports func(p Ports) []int
	args  func(c *Cluster) []string
	// probe checks readiness once; nil means the process needs no probe (kwok,
	// whose readiness shows in the nodes becoming Ready).
	probe func(ctx context.Context, c *Cluster) error
	// grace is how long the process gets to exit after SIGTERM before SIGKILL.
	grace time.Duration
}

// components lists the control plane in start order; they stop in reverse.
func components() []component {
	return []component{
		{name: BinEtcd, ports: func(p Ports) []int { return []int{p.Etcd, p.EtcdPeer} }, args: etcdArgs, probe: probeEtcd, grace: 10 * time.Second},
		{name: BinAPIServer, ports: func(p Ports) []int { return []int{p.APIServer} }, args: apiServerArgs, probe: probeAPIServer, grace: 10 * time.Second},
		{name: BinControllerManager, ports: func(p Ports) []int { return []int{p.ControllerManager} }, args: controllerManagerArgs, probe: probeHealthz(func(p Ports) int { return p.ControllerManager }), grace: 5 * time.Second},
		{name: BinScheduler, ports: func(p Ports) []int { return []int{p.Scheduler} }, args: schedulerArgs, probe: probeHealthz(func(p Ports) int { return p.Scheduler }), grace: 5 * time.Second},
		{name: BinKwok, ports: kwokPorts, args: kwokArgs, grace: 5 * time.Second},
	}
}

func url(port int) string { return "https://127.0.0.1:" + strconv.Itoa(port) }

func etcdArgs(c *Cluster) []string {
	pki := c.pkiDir()
	client, peer := url(c.State.Ports.Etcd), url(c.State.Ports.EtcdPeer)
	return []string{
		"--name=" + c.Name,
		"--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=" + c.Name + "=" + peer,
		"--cert-file=" + certPath(pki, "etcd-server"),
		"--key-file=" + keyPath(pki, "etcd-server"),
		"--trusted-ca-file=" + certPath(pki, etcdCAName),
		"--client-cert-auth=true",
		"--peer-cert-file=" + certPath(pki, "etcd-server"),
		"--peer-key-file=" + keyPath(pki, "etcd-server"),
		"--peer-trusted-ca-file=" + certPath(pki, etcdCAName),
		"--peer-client-cert-auth=true",
		"--snapshot-count=10000",
		"--quota-backend-bytes=" + strconv.Itoa(8<<30),
		"--log-level=warn",
	}
}

func apiServerArgs(c *Cluster) []string {
	pki := c.pkiDir()
	args := []string{
		"--etcd-servers=" + url(c.State.Ports.Etcd),
		"--etcd-cafile=" + certPath(pki, etcdCAName),
		"--etcd-certfile=" + certPath(pki, "apiserver-etcd-client"),
		"--etcd-keyfile=" + keyPath(pki, "apiserver-etcd-client"),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.State.Ports.APIServer),
		"--tls-cert-file=" + certPath(pki, "apiserver"),
		"--tls-private-key-file=" + keyPath(pki, "apiserver"),
		"--client-ca-file=" + certPath(pki, caName),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--service-cluster-ip-range=" + c.State.network().ServiceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(pki, saKeyName+".pub"),
		"--service-account-signing-key-file=" + keyPath(pki, saKeyName),
		// kwok plays every node's kubelet on one loopback port (see node()), so
		// pods/log reaches it through the node's InternalIP; the node's host name
		// resolves nowhere.
		"--kubelet-preferred-address-types=InternalIP",
		// /debug/pprof, for the cluster's admin only (RBAC): it costs nothing
		// until asked, and shows where the API server's time goes
		// (bench/controller -apiserver-profile).
		"--profiling=true",
		"--v=1",
	}
	if f := c.egressConfigFile(); f != "" {
		// Webhooks and kubelets are reached through the stand-ins (standins_admission.go).
		args = append(args, "--egress-selector-config-file="+f)
	}
	return args
}

// componentQPS and componentBurst are the client rate limits of
// kube-controller-manager and kube-scheduler. Their defaults (20 and 30
// requests/s, 50 and 100 for the scheduler) made kube-controller-manager the
// bottleneck of any Deployment-heavy apply on the local cluster: each
// Deployment costs it a ReplicaSet create and two status writes. The API
// server's priority and fairness still protects it; kwok sets no client limit
// of its own (it uses an always-allow rate limiter).
const (
	componentQPS   = 500
	componentBurst = 1000
)

func controllerManagerArgs(c *Cluster) []string {
	pki := c.pkiDir()
	kc := c.componentKubeconfig(BinControllerManager)
	return []string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.State.Ports.ControllerManager),
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + keyPath(pki, saKeyName),
		"--root-ca-file=" + certPath(pki, caName),
		"--cluster-signing-cert-file=" + certPath(pki, caName),
		"--cluster-signing-key-file=" + keyPath(pki, caName),
		"--service-cluster-ip-range=" + c.State.network().ServiceCIDR,
		"--cluster-name=" + c.Name,
		// Provisions PersistentVolumes as directories under /tmp/hostpath_pv for
		// the default StorageClass, so that volume claims bind as on a real cluster.
		"--enable-hostpath-provisioner=true",
		"--kube-api-qps=" + strconv.Itoa(componentQPS),
		"--kube-api-burst=" + strconv.Itoa(componentBurst),
		// Five workers each (the default) kept a thousand new Deployments
		// waiting for their ReplicaSets, and every deploy polling for them.
		"--concurrent-deployment-syncs=20",
		"--concurrent-replicaset-syncs=20",
		"--profiling=false",
		"--v=1",
	}
}

func schedulerArgs(c *Cluster) []string {
	kc := c.componentKubeconfig(BinScheduler)
	return []string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.State.Ports.Scheduler),
		"--leader-elect=false",
		"--kube-api-qps=" + strconv.Itoa(componentQPS),
		"--kube-api-burst=" + strconv.Itoa(componentBurst),
		"--profiling=false",
		"--v=1",
	}
}

func kwokPorts(p Ports) []int {
	if p.Kwok == 0 {
		return nil
	}
	return []int{p.Kwok}
}

func kwokArgs(c *Cluster) []string {
	args := []string{
		// An explicit configuration keeps a user's ~/.kwok/kwok.yaml out of berth's cluster.
		"--config=" + filepath.Join(c.Dir, "kwok.yaml"),
		"--kubeconfig=" + c.componentKubeconfig(BinKwok),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--node-lease-duration-seconds=40",
	}
	if p := c.State.Ports.Kwok; p != 0 {
		// kwok's kubelet server: the API server's pods/log lands here. It serves
		// TLS with a certificate of its own; the API server, given no
		// --kubelet-certificate-authority, does not verify it (as on kind).
		args = append(args, "--server-address=127.0.0.1:"+strconv.Itoa(p), "--node-port="+strconv.Itoa(p))
	}
	return args
}

// ConsolePodPort is the pod port kwok forwards to the cluster's console
// address (Ports.Console): the controller Deployment's console port, so that
// a port-forward through the API server to a controller pod reaches the
// console of the controller running as a local process.
const ConsolePodPort = 9443

// kwokConfig is kwok's configuration: its defaults, one ClusterLogs that
// serves the simulated log file for every container of every pod, so that
// 'kubectl logs' and 'berth logs' read lines through the real API server,
// the simulated pod metrics (kwokMetricsConfig), and one ClusterPortForward
// that sends a port-forward to any pod's ConsolePodPort to the cluster's
// console address (kwokPortForwardConfig).
func (c *Cluster) kwokConfig() []byte {
	return []byte(`apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options: {}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: berth-simulated
spec:
  logs:
  - logsFile: ` + strconv.Quote(c.simulatedLogPath()) + `
    previousLogsFile: ` + strconv.Quote(c.simulatedLogPath()) + `
    follow: true
` + kwokMetricsConfig + c.kwokPortForwardConfig())
}

// kwokPortForwardConfig forwards ConsolePodPort of every pod to the
// cluster's console address; "" for a cluster without one. Other ports of a
// pod forward nowhere, as kwok's pods run nothing.
func (c *Cluster) kwokPortForwardConfig() string {
	if c.State.Ports.Console == 0 {
		return ""
	}
	return `---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: berth-console
spec:
  forwards:
  - ports: [` + strconv.Itoa(ConsolePodPort) + `]
    target:
      address: 127.0.0.1
      port: ` + strconv.Itoa(c.State.Ports.Console) + `
`
}

func (c *Cluster) simulatedLogPath() string { return filepath.Join(c.Dir, "kwok", "container.log") }

// simulatedLog is the log every simulated container prints, in the CRI log
// format kwok reads (timestamp, stream, tag, line), stamped from the cluster's
// creation so that --since selects as it would on a real node.
func simulatedLog(created time.Time) []byte {
	lines := []string{
		"starting (simulated by kwok on a berth local cluster)",
		"configuration loaded",
		"listening",
		"ready",
	}
	var b strings.Builder
	for i, l := range lines {
		b.WriteString(created.Add(time.Duration(i)*time.Millisecond).UTC().Format(time.RFC3339Nano) + " stdout F " + l + "\n")
	}
	return []byte(b.String())
}

// httpsGet performs one GET against a loopback endpoint and requires a 200.
func httpsGet(ctx context.Context, tlsConfig *tls.Config, endpoint string) error {
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", endpoint, resp.Status, lastLines(body, 5))
	}
	return nil
}

// clientTLS builds a TLS client configuration from one of the cluster's key pairs
// and the CA that should have signed the server.
func (c *Cluster) clientTLS(certName, ca string) (*tls.Config, error) {
	pki := c.pkiDir()
	cert, err := tls.LoadX509KeyPair(certPath(pki, certName), keyPath(pki, certName))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(certPath(pki, ca))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate in " + certPath(pki, ca))
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func probeEtcd(ctx context.Context, c *Cluster) error {
	cfg, err := c.clientTLS("apiserver-etcd-client", etcdCAName)
	if err != nil {
		return err
	}
	return httpsGet(ctx, cfg, url(c.State.Ports.Etcd)+"/health")
}

func probeAPIServer(ctx context.Context, c *Cluster) error {
	cfg, err := c.clientTLS("admin", caName)
	if err != nil {
		return err
	}
	return httpsGet(ctx, cfg, url(c.State.Ports.APIServer)+"/readyz")
}

// probeHealthz checks a controller's /healthz. Controller-manager and scheduler
// serve with a self-signed certificate they generate in memory, as under kubeadm,
// so the probe cannot verify it; it sends no credentials and reads only health.
func probeHealthz(port func(Ports) int) func(ctx context.Context, c *Cluster) error {
	return func(ctx context.Context, c *Cluster) error {
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // loopback health probe, no credentials sent
		return httpsGet(ctx, cfg, url(port(c.State.Ports))+"/healthz")
	}
}

// KwokMetricsPath is where kwok's kubelet server serves the simulated pod
// metrics of each node ({nodeName}); kwok lists one target per node at
// /discovery/prometheus, which the local Prometheus scrapes (job kwok).
const KwokMetricsPath = "/metrics/nodes/{nodeName}/metrics/resource"

// kwokMetricsConfig makes kwok simulate what a kubelet's resource metrics
// endpoint serves for its pods, with the names the kubelet uses, so that
// alerts and panels written for real clusters find series: the CPU and
// memory of each container and pod (1m CPU and 1Mi by default; a pod's
// annotations kwok.x-k8s.io/usage-cpu and kwok.x-k8s.io/usage-memory set
// them, as kwok's own usage-from-annotation does), and kube-state-metrics'
// kube_pod_status_phase (1 for the pod's current phase). Container restart
// counts are not among them: kwok's expression language does not reach a
// pod's container statuses.
const kwokMetricsConfig = `---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterResourceUsage
metadata:
  name: berth-usage-from-annotation
spec:
  usages:
  - usage:
      cpu:
        expression: '"kwok.x-k8s.io/usage-cpu" in pod.metadata.annotations ? Quantity(pod.metadata.annotations["kwok.x-k8s.io/usage-cpu"]) : Quantity("1m")'
      memory:
        expression: '"kwok.x-k8s.io/usage-memory" in pod.metadata.annotations ? Quantity(pod.metadata.annotations["kwok.x-k8s.io/usage-memory"]) : Quantity("1Mi")'
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Metric
metadata:
  name: berth-pods
spec:
  path: "` + KwokMetricsPath + `"
  metrics:
  - name: container_cpu_usage_seconds_total
    dimension: container
    help: Cumulative cpu time consumed by the container in core-seconds (simulated by kwok)
    kind: counter
    labels:
    - {name: container, value: container.name}
    - {name: namespace, value: pod.metadata.namespace}
    - {name: pod, value: pod.metadata.name}
    value: pod.CumulativeUsage("cpu", container.name)
  - name: container_memory_working_set_bytes
    dimension: container
    help: Current working set of the container in bytes (simulated by kwok)
    kind: gauge
    labels:
    - {name: container, value: container.name}
    - {name: namespace, value: pod.metadata.namespace}
    - {name: pod, value: pod.metadata.name}
    value: pod.Usage("memory", container.name)
  - name: pod_cpu_usage_seconds_total
    dimension: pod
    help: Cumulative cpu time consumed by the pod in core-seconds (simulated by kwok)
    kind: counter
    labels:
    - {name: namespace, value: pod.metadata.namespace}
    - {name: pod, value: pod.metadata.name}
    value: pod.CumulativeUsage("cpu")
  - name: pod_memory_working_set_bytes
    dimension: pod
    help: Current working set of the pod in bytes (simulated by kwok)
    kind: gauge
    labels:
    - {name: namespace, value: pod.metadata.namespace}
    - {name: pod, value: pod.metadata.name}
    value: pod.Usage("memory")
  - name: kube_pod_status_phase
    dimension: pod
    help: The pod's current phase (as kube-state-metrics reports it; simulated by kwok)
    kind: gauge
    labels:
    - {name: namespace, value: pod.metadata.namespace}
    - {name: pod, value: pod.metadata.name}
    - {name: phase, value: pod.status.phase}
    value: "1"
`
