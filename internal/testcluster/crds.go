package testcluster

import (
	"context"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/config"
)

// InstallCRDs installs berth's CustomResourceDefinitions (config.CRDs), as
// bootstrap does, in the cluster of cfg and waits until they are served.
// Other test binaries sharing the cluster install them at the same time: a
// create or update that lost that race is tried again.
func InstallCRDs(t testing.TB, cfg *rest.Config) {
	t.Helper()
	cs := apiextclient.NewForConfigOrDie(cfg)
	ctx := context.Background()
	for _, data := range config.CRDs {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatal(err)
		}
		var err error
		for range 5 {
			var cur *apiextensionsv1.CustomResourceDefinition
			cur, err = cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				_, err = cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd.DeepCopy(), metav1.CreateOptions{})
			case err == nil:
				upd := crd.DeepCopy()
				upd.ResourceVersion = cur.ResourceVersion
				_, err = cs.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, upd, metav1.UpdateOptions{})
			}
			if !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		WaitFor(t, time.Minute, func(ctx context.Context) (bool, string, error) {
			c, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			for _, cond := range c.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, "", nil
				}
			}
			return false, crd.Name + " not established", nil
		})
	}
}
