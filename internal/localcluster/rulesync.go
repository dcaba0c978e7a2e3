package localcluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// The local Prometheus runs without the Prometheus operator, so nothing would
// read the PrometheusRule objects that packages ship. The rule sync plays the
// operator's part for rules only: it writes each PrometheusRule's groups as a
// rule file under monitoring/rules and reloads Prometheus when they change.
// Any workspace's rules work this way, whatever installed them.

// RuleSyncAddon is the add-on name of the rule sync process.
const RuleSyncAddon = "rule-sync"

// PrometheusRuleGVR is the resource of the Prometheus operator's rules.
var PrometheusRuleGVR = schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "prometheusrules"}

// prometheusRuleCRD is a minimal definition of PrometheusRule, installed on a
// local cluster that lacks the operator's, so that packages' rules can be
// applied; the operator's own CRD replaces it when kube-prometheus-stack is
// installed.
var prometheusRuleCRD = map[string]any{
	"apiVersion": "apiextensions.k8s.io/v1",
	"kind":       "CustomResourceDefinition",
	"metadata":   map[string]any{"name": "prometheusrules.monitoring.coreos.com"},
	"spec": map[string]any{
		"group": "monitoring.coreos.com",
		"names": map[string]any{"kind": "PrometheusRule", "listKind": "PrometheusRuleList", "plural": "prometheusrules", "singular": "prometheusrule"},
		"scope": "Namespaced",
		"versions": []any{map[string]any{
			"name": "v1", "served": true, "storage": true,
			"schema": map[string]any{"openAPIV3Schema": map[string]any{
				"type": "object", "x-kubernetes-preserve-unknown-fields": true,
			}},
		}},
	},
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// EnsurePrometheusRuleCRD creates the minimal PrometheusRule CRD unless one
// exists, and waits until it is served.
func EnsurePrometheusRuleCRD(ctx context.Context, cfg *rest.Config) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	_, err = dyn.Resource(crdGVR).Create(ctx, &unstructured.Unstructured{Object: prometheusRuleCRD}, metav1.CreateOptions{FieldManager: "berth-local-monitoring"})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("installing the PrometheusRule CRD: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := dyn.Resource(PrometheusRuleGVR).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the PrometheusRule CRD is not served: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// StartRuleSync installs the PrometheusRule CRD when the cluster lacks it and
// starts the rule sync as an add-on, run by bin (the berth binary) as
// 'berth local-cluster-rules'.
func (c *Cluster) StartRuleSync(ctx context.Context, bin string) error {
	cfg, err := c.RESTConfig()
	if err != nil {
		return err
	}
	if err := EnsurePrometheusRuleCRD(ctx, cfg); err != nil {
		return err
	}
	if _, err := c.StartAddon(ctx, RuleSyncAddon, bin, []string{"local-cluster-rules", "--kubeconfig", c.KubeconfigPath(), "--cluster-dir", c.Dir}); err != nil {
		return fmt.Errorf("starting the rule sync: %w", err)
	}
	return nil
}

// RunRuleSync writes, every interval until ctx ends, the groups of every
// PrometheusRule in the cluster into clusterDir's rule files (one file per
// object, NAMESPACE_NAME.yaml), removes the files of deleted objects, and
// reloads the local Prometheus after a change. It logs what it does to log.
func RunRuleSync(ctx context.Context, cfg *rest.Config, clusterDir string, interval time.Duration, log io.Writer) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	c := &Cluster{Name: filepath.Base(clusterDir), Dir: clusterDir}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		changed, err := syncRules(ctx, dyn, c.RulesDir())
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(log, "rule sync: %v\n", err)
		}
		if changed {
			if err := c.ReloadMonitoring(ctx); err != nil && ctx.Err() == nil {
				fmt.Fprintf(log, "rule sync: %v\n", err)
			} else {
				fmt.Fprintln(log, "rule sync: rule files changed, Prometheus reloaded")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// syncRules brings dir to the cluster's PrometheusRules; it reports whether a
// file changed.
func syncRules(ctx context.Context, dyn dynamic.Interface, dir string) (bool, error) {
	list, err := dyn.Resource(PrometheusRuleGVR).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		list = &unstructured.UnstructuredList{}
	} else if err != nil {
		return false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	want := map[string][]byte{}
	for i := range list.Items {
		o := &list.Items[i]
		groups, _, _ := unstructured.NestedSlice(o.Object, "spec", "groups")
		data, err := yaml.Marshal(map[string]any{"groups": groups})
		if err != nil {
			return false, fmt.Errorf("%s/%s: %w", o.GetNamespace(), o.GetName(), err)
		}
		want[o.GetNamespace()+"_"+o.GetName()+".yaml"] = data
	}
	changed := false
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if _, ok := want[e.Name()]; !ok && strings.HasSuffix(e.Name(), ".yaml") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return changed, err
			}
			changed = true
		}
	}
	for name, data := range want {
		path := filepath.Join(dir, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			continue
		}
		if err := writeFileAtomic(path, data, 0o644); err != nil {
			return changed, err
		}
		changed = true
	}
	return changed, nil
}
