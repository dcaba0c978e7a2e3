package controller

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/config"
	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/secrets"
)

// DefaultImage is the controller image bootstrap installs unless --image says
// otherwise: the image the Dockerfile builds, as a local build tags it.
const DefaultImage = "berth:latest"

// BootstrapApp is the app name under which bootstrap applies (and records) the
// controller's own objects.
const BootstrapApp = "berth-controller"

// BootstrapOptions say what bootstrap installs.
type BootstrapOptions struct {
	// Namespace holds the controller, its Secrets and the Workspace.
	Namespace string
	// Image is the controller image.
	Image string
	// Local installs no Deployment and no cluster-wide RBAC: the controller
	// runs as a local process (kwok nodes run no containers).
	Local bool
	// Workspace is the Workspace to create; its secret references are set
	// from the credentials given below.
	Workspace berthv1.WorkspaceSpec
	// Name of the Workspace.
	Name string
	// Key is the workspace's git-crypt key file; nil when it has no secrets.
	Key []byte
	// Git credentials: Username and Password (a token) for HTTPS, Identity
	// and KnownHosts for SSH.
	Username, Password   string
	Identity, KnownHosts []byte
	// WebhookToken signs push webhooks; generated when empty.
	WebhookToken string
	// Timeout bounds the wait for the CRD and the controller to be ready.
	Timeout time.Duration
	// Events receives the steps of the apply.
	Events func(apply.Event)
}

// DefaultBootstrapOptions returns the options of a plain bootstrap.
func DefaultBootstrapOptions() BootstrapOptions {
	return BootstrapOptions{
		Namespace: "berth-system",
		Image:     DefaultImage,
		Name:      "workspace",
		Workspace: berthv1.WorkspaceSpec{Branch: "main", Interval: metav1.Duration{Duration: time.Minute}, Timeout: metav1.Duration{Duration: 5 * time.Minute}},
		Timeout:   5 * time.Minute,
	}
}

// Secret names bootstrap creates in the controller's namespace.
const (
	gitSecretName     = "berth-git-credentials"
	keySecretName     = "berth-decryption-key"
	webhookSecretName = "berth-webhook-token"
)

// BootstrapManifests returns the objects bootstrap applies: the CRD, the
// controller (unless Local), the Secrets and the Workspace. They hold the
// credentials in plaintext: never print them.
func BootstrapManifests(opts BootstrapOptions) ([]*unstructured.Unstructured, error) {
	if opts.Workspace.URL == "" {
		return nil, errors.New("no repository: pass --repo URL, the git URL of the workspace")
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultBootstrapOptions().Namespace
	}
	if opts.Image == "" {
		opts.Image = DefaultImage
	}
	if opts.Name == "" {
		opts.Name = DefaultBootstrapOptions().Name
	}
	var objs []*unstructured.Unstructured
	for _, data := range config.CRDs {
		crd, err := apply.DecodeManifests("embedded CRD", bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		objs = append(objs, crd...)
	}
	tmpl, err := template.New("controller").Option("missingkey=error").Parse(config.ControllerTemplate)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, map[string]any{"Namespace": opts.Namespace, "Image": opts.Image, "Replicas": 1}); err != nil {
		return nil, err
	}
	ctrlObjs, err := apply.DecodeManifests("embedded controller manifests", &b)
	if err != nil {
		return nil, err
	}
	for _, o := range ctrlObjs {
		if opts.Local && o.GetKind() != "Namespace" {
			continue
		}
		objs = append(objs, o)
	}

	ws := berthv1.Workspace{
		TypeMeta:   metav1.TypeMeta{APIVersion: berthv1.GroupVersion.String(), Kind: "Workspace"},
		ObjectMeta: metav1.ObjectMeta{Name: opts.Name, Namespace: opts.Namespace},
		Spec:       opts.Workspace,
	}
	addSecret := func(name string, data map[string][]byte) error {
		s := corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: opts.Namespace},
			Type:       corev1.SecretTypeOpaque,
			Data:       data,
		}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&s)
		if err != nil {
			return err
		}
		objs = append(objs, &unstructured.Unstructured{Object: u})
		return nil
	}
	if opts.Password != "" || len(opts.Identity) > 0 {
		data := map[string][]byte{}
		set := func(k string, v []byte) {
			if len(v) > 0 {
				data[k] = v
			}
		}
		set(berthv1.GitUsernameKey, []byte(opts.Username))
		set(berthv1.GitPasswordKey, []byte(opts.Password))
		set(berthv1.GitIdentityKey, opts.Identity)
		set(berthv1.GitKnownHostsKey, opts.KnownHosts)
		if err := addSecret(gitSecretName, data); err != nil {
			return nil, err
		}
		ws.Spec.SecretRef = &berthv1.LocalSecretReference{Name: gitSecretName}
	}
	if len(opts.Key) > 0 {
		if _, err := secrets.ParseKey(opts.Key); err != nil {
			return nil, fmt.Errorf("--key: not a git-crypt key file: %w", err)
		}
		if err := addSecret(keySecretName, map[string][]byte{berthv1.DecryptionKeyKey: opts.Key}); err != nil {
			return nil, err
		}
		ws.Spec.DecryptionRef = &berthv1.LocalSecretReference{Name: keySecretName}
	}
	token := opts.WebhookToken
	if token == "" {
		var r [24]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, err
		}
		token = hex.EncodeToString(r[:])
	}
	if err := addSecret(webhookSecretName, map[string][]byte{berthv1.WebhookTokenKey: []byte(token)}); err != nil {
		return nil, err
	}
	ws.Spec.WebhookSecretRef = &berthv1.LocalSecretReference{Name: webhookSecretName}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&ws)
	if err != nil {
		return nil, err
	}
	delete(u, "status")
	unstructured.RemoveNestedField(u, "metadata", "creationTimestamp")
	objs = append(objs, &unstructured.Unstructured{Object: u})
	return objs, nil
}

// BootstrapResult is what Bootstrap did.
type BootstrapResult struct {
	Apply *apply.Result `json:"apply"`
	// Workspace is namespace/name of the Workspace.
	Workspace string `json:"workspace"`
	// WebhookSecret is namespace/name of the Secret holding the webhook token.
	WebhookSecret string `json:"webhookSecret"`
}

// Bootstrap installs the controller into the cluster of cfg with the deploy
// engine (so a second run changes only what changed) and creates the Workspace.
// Unless opts.Local, it waits for the controller to be ready.
func Bootstrap(ctx context.Context, cfg *rest.Config, opts BootstrapOptions) (*BootstrapResult, error) {
	objs, err := BootstrapManifests(opts)
	if err != nil {
		return nil, err
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultBootstrapOptions().Namespace
	}
	if opts.Name == "" {
		opts.Name = DefaultBootstrapOptions().Name
	}
	e, err := apply.NewEngine(cfg, apply.DefaultOptions())
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultBootstrapOptions().Timeout
	}
	// An existing webhook token is kept: a new one would break the
	// forge's configured webhook.
	if opts.WebhookToken == "" {
		if tok := existingWebhookToken(ctx, cfg, opts.Namespace); tok != "" {
			opts.WebhookToken = tok
			if objs, err = BootstrapManifests(opts); err != nil {
				return nil, err
			}
		}
	}
	// The engine records the CRD (its first stage) in the inventory, which
	// lives in the namespace: create that first.
	if err := ensureNamespaceExists(ctx, cfg, opts.Namespace); err != nil {
		return nil, err
	}
	res, err := e.Apply(ctx, objs, apply.ApplyOptions{
		App: BootstrapApp, Namespace: opts.Namespace, Prune: true, Wait: !opts.Local, Timeout: timeout, Events: opts.Events,
	})
	out := &BootstrapResult{Apply: res, Workspace: opts.Namespace + "/" + opts.Name, WebhookSecret: opts.Namespace + "/" + webhookSecretName}
	if err != nil {
		return out, fmt.Errorf("installing the berth controller: %w", err)
	}
	return out, nil
}

func existingWebhookToken(ctx context.Context, cfg *rest.Config, namespace string) string {
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return ""
	}
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: webhookSecretName}, &s); err != nil {
		return ""
	}
	return string(s.Data[berthv1.WebhookTokenKey])
}

func ensureNamespaceExists(ctx context.Context, cfg *rest.Config, name string) error {
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}
