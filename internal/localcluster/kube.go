package localcluster

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	// ClusterLabel marks the nodes berth created for a local cluster.
	ClusterLabel = "berth.dev/local-cluster"
)

// writeKubeconfigs writes the admin kubeconfig (credentials embedded, so it can be
// copied elsewhere) and one per component (referring to the pki files).
func (c *Cluster) writeKubeconfigs() error {
	pki := c.pkiDir()
	caData, err := os.ReadFile(certPath(pki, caName))
	if err != nil {
		return err
	}
	certData, err := os.ReadFile(certPath(pki, "admin"))
	if err != nil {
		return err
	}
	keyData, err := os.ReadFile(keyPath(pki, "admin"))
	if err != nil {
		return err
	}
	contextName := "berth-" + c.Name
	admin := kubeconfig(contextName, c.APIServerURL(),
		&clientcmdapi.Cluster{Server: c.APIServerURL(), CertificateAuthorityData: caData},
		&clientcmdapi.AuthInfo{ClientCertificateData: certData, ClientKeyData: keyData})
	if err := writeKubeconfig(c.KubeconfigPath(), admin); err != nil {
		return err
	}
	for _, comp := range []string{BinControllerManager, BinScheduler, BinKwok} {
		kc := kubeconfig(comp, c.APIServerURL(),
			&clientcmdapi.Cluster{Server: c.APIServerURL(), CertificateAuthority: certPath(pki, caName)},
			&clientcmdapi.AuthInfo{ClientCertificate: certPath(pki, comp), ClientKey: keyPath(pki, comp)})
		if err := writeKubeconfig(c.componentKubeconfig(comp), kc); err != nil {
			return err
		}
	}
	return nil
}

func kubeconfig(name, server string, cluster *clientcmdapi.Cluster, user *clientcmdapi.AuthInfo) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = cluster
	cfg.AuthInfos[name] = user
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	return cfg
}

func writeKubeconfig(path string, cfg *clientcmdapi.Config) error {
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data, 0o600)
}

func (c *Cluster) clientset() (*kubernetes.Clientset, error) {
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// ensureKwokRBAC grants kwok's user what it needs to play the kubelets: read
// nodes, write node and pod status, delete pods, renew node leases, post events.
func (c *Cluster) ensureKwokRBAC(ctx context.Context) error {
	cs, err := c.clientset()
	if err != nil {
		return err
	}
	const name = "berth:kwok"
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update", "get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"nodes/status", "pods/status"}, Verbs: []string{"patch", "update"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "patch", "update", "delete"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create", "get", "list", "watch", "patch", "update"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: kwokUser}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		_, err = cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating clusterrole %s: %w", name, err)
		}
	} else if err != nil {
		return fmt.Errorf("updating clusterrole %s: %w", name, err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Update(ctx, binding, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating clusterrolebinding %s: %w", name, err)
		}
	} else if err != nil {
		return fmt.Errorf("updating clusterrolebinding %s: %w", name, err)
	}
	return nil
}

// nodeIP is the i-th node's InternalIP. Every node's kubelet is the one kwok
// process on loopback, so the API server finds it there; clusters created
// before kwok served logs keep their unroutable addresses.
func (c *Cluster) nodeIP(i int) string {
	if c.State.Ports.Kwok != 0 {
		return "127.0.0.1"
	}
	return fmt.Sprintf("172.30.%d.%d", i/250, i%250+1)
}

// NodeName is the name of a local cluster's i-th node (from 1).
func NodeName(cluster string, i int) string { return cluster + "-node-" + strconv.Itoa(i) }

// ensureNodes makes exactly State.Nodes simulated nodes exist, then waits until
// kwok has made every one of them Ready.
func (c *Cluster) ensureNodes(ctx context.Context, progress ProgressFunc) error {
	cs, err := c.clientset()
	if err != nil {
		return err
	}
	existing, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: ClusterLabel + "=" + c.Name})
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	want := map[string]bool{}
	for i := 1; i <= c.State.Nodes; i++ {
		want[NodeName(c.Name, i)] = true
	}
	have := map[string]bool{}
	for _, n := range existing.Items {
		have[n.Name] = true
		if !want[n.Name] {
			if err := cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting node %s: %w", n.Name, err)
			}
		}
	}
	for i := 1; i <= c.State.Nodes; i++ {
		name := NodeName(c.Name, i)
		if have[name] {
			continue
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, c.node(i), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating node %s: %w", name, err)
		}
	}
	if err := c.ensureStorageClass(ctx, cs); err != nil {
		return err
	}
	if err := c.saveState(); err != nil {
		return err
	}
	label := fmt.Sprintf("wait for %d nodes to be Ready", c.State.Nodes)
	return step(progress, label, "", func() error {
		return c.waitFor(ctx, func(ctx context.Context) error {
			nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: ClusterLabel + "=" + c.Name})
			if err != nil {
				return err
			}
			var notReady []string
			for _, n := range nodes.Items {
				if !nodeReady(&n) {
					notReady = append(notReady, n.Name)
				}
			}
			sort.Strings(notReady)
			if len(notReady) > 0 || len(nodes.Items) != c.State.Nodes {
				return fmt.Errorf("%d of %d nodes Ready (waiting for %v)", len(nodes.Items)-len(notReady), c.State.Nodes, notReady)
			}
			return nil
		})
	})
}

// StorageClassName is the default StorageClass of a local cluster.
const StorageClassName = "standard"

// ensureStorageClass makes the host-path provisioner of kube-controller-manager
// the cluster's default StorageClass.
func (c *Cluster) ensureStorageClass(ctx context.Context, cs *kubernetes.Clientset) error {
	immediate := storagev1.VolumeBindingImmediate
	deletePolicy := corev1.PersistentVolumeReclaimDelete
	expand := true
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        StorageClassName,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
			Labels:      map[string]string{ClusterLabel: c.Name},
		},
		Provisioner:       "kubernetes.io/host-path",
		ReclaimPolicy:     &deletePolicy,
		VolumeBindingMode: &immediate,
		// Claims grow as on a cloud's classes, so that resizing runbooks work.
		AllowVolumeExpansion: &expand,
	}
	_, err := cs.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating storageclass %s: %w", StorageClassName, err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// node is the i-th simulated node: kwok manages it because of its annotation and
// reports it Ready with the capacity below. Like a kubelet's node it has its own
// pod range (kwok hands out pod IPs from it) and an internal address.
func (c *Cluster) node(i int) *corev1.Node {
	name := NodeName(c.Name, i)
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("32"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{kwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				ClusterLabel:                    c.Name,
				"kubernetes.io/hostname":        name,
				"kubernetes.io/os":              "linux",
				"kubernetes.io/arch":            "amd64",
				"node-role.kubernetes.io/agent": "",
				"type":                          "kwok",
			},
		},
		Spec: corev1.NodeSpec{
			PodCIDR:  c.State.network().nodePodCIDR(i),
			PodCIDRs: []string{c.State.network().nodePodCIDR(i)},
		},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: c.nodeIP(i)},
				{Type: corev1.NodeHostName, Address: name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(c.State.Ports.Kwok)}},
			Capacity:        capacity,
			Allocatable:     capacity,
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:  c.State.Versions.Kubernetes,
				OperatingSystem: "linux",
				Architecture:    "amd64",
			},
		},
	}
}
