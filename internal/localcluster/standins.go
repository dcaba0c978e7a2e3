package localcluster

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// A local cluster runs no containers: kwok plays the kubelets, so pods become
// Running and Jobs complete. Custom resources are another matter: their
// controllers (cert-manager's, say) run in pods, so on a local cluster nothing
// would ever write their status, and packages that gate on it (a Certificate
// Ready) would never become healthy. The stand-ins play those controllers'
// part the way kwok plays the kubelet's: they set the condition the real
// controller sets when it succeeds, saying that a stand-in did.

// StandInsAddon is the add-on name of the stand-ins process.
const StandInsAddon = "stand-ins"

// StandInReason is the reason of the conditions the stand-ins set.
const StandInReason = "LocalClusterStandIn"

// standIn is a kind whose controller cannot run on a local cluster, and the
// condition it sets when it succeeds.
type standIn struct {
	gvr       schema.GroupVersionResource
	condition string
	what      string
}

var (
	certificatesGVR = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}
	prometheusesGVR = schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "prometheuses"}
	alertmanagerGVR = schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "alertmanagers"}
)

var standIns = []standIn{
	{certificatesGVR, "Ready", "cert-manager issued the certificate"},
	{schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "issuers"}, "Ready", "cert-manager accepted the issuer"},
	{schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "clusterissuers"}, "Ready", "cert-manager accepted the issuer"},
	// The Prometheus Operator reconciles these into StatefulSets and reports
	// them Reconciled, then Available once their pods are ready. No operator
	// runs here, so no StatefulSet, Prometheus or Alertmanager exists.
	{prometheusesGVR, "Reconciled", "the Prometheus Operator created the Prometheus StatefulSet (none exists on the local cluster)"},
	{prometheusesGVR, "Available", "the Prometheus Operator reports the Prometheus pods ready (none runs on the local cluster)"},
	{alertmanagerGVR, "Reconciled", "the Prometheus Operator created the Alertmanager StatefulSet (none exists on the local cluster)"},
	{alertmanagerGVR, "Available", "the Prometheus Operator reports the Alertmanager pods ready (none runs on the local cluster)"},
}

// StartStandIns starts the stand-ins as an add-on of the cluster, run by bin
// (the berth binary) as 'berth local-cluster-stand-ins'. They serve the API
// server's egress to the cluster network on the cluster's stand-ins socket
// (see EgressSocket).
func (c *Cluster) StartStandIns(ctx context.Context, bin string) error {
	args := []string{"local-cluster-stand-ins", "--kubeconfig", c.KubeconfigPath(), "--egress-socket", c.EgressSocket()}
	if _, err := c.StartAddon(ctx, StandInsAddon, bin, args); err != nil {
		return fmt.Errorf("starting the local cluster's stand-ins: %w", err)
	}
	return nil
}

// StandInOptions configure RunStandIns.
type StandInOptions struct {
	// Interval is how often the stand-ins look for objects to settle.
	Interval time.Duration
	// EgressSocket is the Unix socket the API server sends its traffic to the
	// cluster network through (webhooks, kubelets); empty serves none.
	EgressSocket string
	// Log receives a line for each thing the stand-ins do.
	Log io.Writer
}

// DefaultStandInOptions returns options with a one second interval that log
// nowhere.
func DefaultStandInOptions() StandInOptions {
	return StandInOptions{Interval: time.Second, Log: io.Discard}
}

// RunStandIns plays, until ctx ends, the controllers a local cluster cannot
// run. Every interval it sets the success condition on every object of the
// stand-ins' kinds that lacks it (kinds the cluster does not serve yet are
// skipped) and, as cert-manager's webhook and CA injector would, gives
// cert-manager's webhook configurations a CA. With an egress socket it also
// serves the API server's connections to the cluster network: cert-manager's
// webhook is answered by the stand-ins, a Service nothing else answers is
// refused at once, anything else is passed through (see serveEgress).
func RunStandIns(ctx context.Context, cfg *rest.Config, opts StandInOptions) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	log := &syncWriter{w: opts.Log}
	cas := newWebhookCAs(dyn, log)
	if opts.EgressSocket != "" {
		l, err := listenEgress(opts.EgressSocket)
		if err != nil {
			return err
		}
		e := &egress{dyn: dyn, cas: cas, log: log}
		go e.serve(ctx, l)
		defer l.Close()
	}
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	for {
		for _, s := range standIns {
			if err := s.settle(ctx, dyn, log); err != nil && ctx.Err() == nil {
				fmt.Fprintf(log, "%s: %v\n", s.gvr.Resource, err)
			}
		}
		if err := cas.inject(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintf(log, "webhook CAs: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// syncWriter serialises the writes of the stand-ins' goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s standIn) settle(ctx context.Context, dyn dynamic.Interface, log io.Writer) error {
	list, err := dyn.Resource(s.gvr).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil // the CRD is not installed
	}
	if err != nil {
		return err
	}
	for i := range list.Items {
		o := &list.Items[i]
		if hasCondition(o, s.condition) {
			continue
		}
		old, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
		var conds []any
		for _, c := range old {
			if m, ok := c.(map[string]any); !ok || m["type"] != s.condition {
				conds = append(conds, c)
			}
		}
		conds = append(conds, map[string]any{
			"type": s.condition, "status": "True", "reason": StandInReason,
			"message":            "set by berth's local-cluster stand-in: on a real cluster, " + s.what + " here",
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		})
		if err := unstructured.SetNestedSlice(o.Object, conds, "status", "conditions"); err != nil {
			return err
		}
		r := dyn.Resource(s.gvr).Namespace(o.GetNamespace())
		if _, err := r.UpdateStatus(ctx, o, metav1.UpdateOptions{FieldManager: "berth-local-stand-in"}); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				continue // changed or gone meanwhile: the next round sees it
			}
			return fmt.Errorf("%s/%s: %w", o.GetNamespace(), o.GetName(), err)
		}
		fmt.Fprintf(log, "%s %s/%s: set %s=True\n", s.gvr.Resource, o.GetNamespace(), o.GetName(), s.condition)
	}
	return nil
}

func hasCondition(o *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ && m["status"] == "True" {
			return true
		}
	}
	return false
}
