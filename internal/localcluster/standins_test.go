package localcluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"berth.dev/berth/internal/testcluster"
)

// TestStandInsAnswerWebhooks: on the local cluster the API server reaches
// webhooks through the stand-ins. A webhook configured as cert-manager's is
// (its CA injected from a Secret the stand-ins make, failurePolicy Fail)
// is answered, so creates it guards succeed; a webhook whose Service nothing
// answers fails at once with the stand-ins' refusal instead of a timeout.
func TestStandInsAnswerWebhooks(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a local cluster")
	}
	cs := testcluster.Clientset(t)
	ns := testcluster.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for _, name := range []string{"hook", "nobody"} {
		_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": name},
				Ports:    []corev1.ServicePort{{Name: "https", Port: 443}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	fail := admissionv1.Fail
	none := admissionv1.SideEffectClassNone
	timeout := int32(10)
	webhook := func(name, service, resource string) admissionv1.ValidatingWebhook {
		path := "/validate"
		return admissionv1.ValidatingWebhook{
			Name:                    name,
			ClientConfig:            admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{Namespace: ns, Name: service, Path: &path}},
			Rules:                   []admissionv1.RuleWithOperations{{Operations: []admissionv1.OperationType{admissionv1.Create}, Rule: admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{resource}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}
	}
	configs := []*admissionv1.ValidatingWebhookConfiguration{
		{
			ObjectMeta: metav1.ObjectMeta{
				Name:        ns + "-hook",
				Labels:      map[string]string{"app.kubernetes.io/component": "webhook"},
				Annotations: map[string]string{"cert-manager.io/inject-ca-from-secret": ns + "/hook-ca"},
			},
			Webhooks: []admissionv1.ValidatingWebhook{webhook("hook.berth.dev", "hook", "configmaps")},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-nobody"},
			Webhooks:   []admissionv1.ValidatingWebhook{webhook("nobody.berth.dev", "nobody", "serviceaccounts")},
		},
	}
	for _, c := range configs {
		if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, c, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		name := c.Name
		t.Cleanup(func() {
			err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("deleting webhook configuration %s: %v", name, err)
			}
		})
	}

	// As cert-manager's webhook and CA injector: a CA Secret, its certificate
	// in the configuration.
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		c, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, ns+"-hook", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(c.Webhooks[0].ClientConfig.CABundle) > 0, nil
	})
	if err != nil {
		t.Fatalf("the stand-ins never injected a CA into the webhook configuration: %v", err)
	}
	secret, err := cs.CoreV1().Secrets(ns).Get(ctx, "hook-ca", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the webhook's CA Secret: %v", err)
	}
	c, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, ns+"-hook", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Webhooks[0].ClientConfig.CABundle) != string(secret.Data["ca.crt"]) {
		t.Errorf("caBundle is not the CA of Secret hook-ca")
	}

	// The API server takes a moment to see new webhook configurations. Once a
	// ServiceAccount create is refused, it sees the second one, and so the first,
	// created before it: from then on every ConfigMap create calls the
	// stand-in webhook, and fails unless the stand-ins answer it.
	var lastErr error
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, lastErr = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"}}, metav1.CreateOptions{})
		return lastErr != nil, nil
	})
	if err != nil {
		t.Fatalf("a ServiceAccount create passed a webhook whose Service nothing answers: %v", err)
	}
	if msg := lastErr.Error(); !strings.Contains(msg, "nobody.berth.dev") || !strings.Contains(msg, "503") || strings.Contains(msg, "deadline exceeded") {
		t.Errorf("the create should fail at once, refused by the stand-ins; got: %v", lastErr)
	}
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, lastErr = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "guarded-"}}, metav1.CreateOptions{})
		return lastErr == nil, nil
	})
	if err != nil {
		t.Fatalf("a ConfigMap create guarded by the stand-in webhook (failurePolicy Fail) was refused: %v", lastErr)
	}
}
