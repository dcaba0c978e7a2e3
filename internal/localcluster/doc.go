// Package localcluster builds, starts and stops a local Kubernetes control plane
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kwok playing
// the kubelets) as plain host processes, with no container engine. Binaries are
// built from the Go module proxy on first use and cached; cluster state lives in one
// directory per cluster.
package localcluster
