package testcluster

import (
	"context"
	"os"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestNamespaceIsFreshUsableAndDeletedAfterTheTest(t *testing.T) {
	cs := Clientset(t)
	var first, second string
	t.Run("inner", func(t *testing.T) {
		first, second = Namespace(t), Namespace(t)
		for _, ns := range []string{first, second} {
			got, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("namespace %s: %v", ns, err)
			}
			if got.Labels["berth.dev/test"] != "true" {
				t.Errorf("namespace %s lacks the test label", ns)
			}
			// Pods can be created at once: the default service account exists.
			if _, err := cs.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
				t.Errorf("namespace %s: default service account: %v", ns, err)
			}
		}
	})
	if first == second {
		t.Fatalf("two calls returned the same namespace %s", first)
	}
	if !strings.HasPrefix(first, "testnamespaceisfresh") {
		t.Errorf("namespace %q is not named after the test", first)
	}
	for _, ns := range []string{first, second} {
		got, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			t.Fatal(err)
		case got.DeletionTimestamp == nil:
			t.Errorf("namespace %s was not deleted when its test ended", ns)
		}
	}
}

func TestUniqueNameIsAValidBoundedLabel(t *testing.T) {
	tests := map[string]int{"short": 20, "dns label": 63}
	for name, max := range tests {
		t.Run(name+"/With_Odd CHARS/and/a/very/long/name/that/goes/on/and/on/and/on", func(t *testing.T) {
			got := UniqueName(t, max)
			if len(got) > max {
				t.Errorf("%q is longer than %d", got, max)
			}
			if strings.Trim(got, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || strings.HasPrefix(got, "-") {
				t.Errorf("%q is not a DNS label", got)
			}
			if UniqueName(t, max) == got {
				t.Errorf("two calls returned %q", got)
			}
		})
	}
}
