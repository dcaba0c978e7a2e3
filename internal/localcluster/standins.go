package localcluster

import (
	"context"
	"fmt"
	"io"
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

var standIns = []standIn{
	{schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}, "Ready", "cert-manager issued the certificate"},
	{schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "issuers"}, "Ready", "cert-manager accepted the issuer"},
	{schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "clusterissuers"}, "Ready", "cert-manager accepted the issuer"},
}

// StartStandIns starts the stand-ins as an add-on of the cluster, run by bin
// (the berth binary) as 'berth local-cluster-stand-ins'.
func (c *Cluster) StartStandIns(ctx context.Context, bin string) error {
	_, err := c.StartAddon(ctx, StandInsAddon, bin, []string{"local-cluster-stand-ins", "--kubeconfig", c.KubeconfigPath()})
	if err != nil {
		return fmt.Errorf("starting the local cluster's stand-ins: %w", err)
	}
	return nil
}

// RunStandIns sets, every interval until ctx ends, the success condition on
// every object of the stand-ins' kinds that lacks it. Kinds the cluster does
// not serve (yet) are skipped. It logs what it does to log.
func RunStandIns(ctx context.Context, cfg *rest.Config, interval time.Duration, log io.Writer) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, s := range standIns {
			if err := s.settle(ctx, dyn, log); err != nil && ctx.Err() == nil {
				fmt.Fprintf(log, "%s: %v\n", s.gvr.Resource, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
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
