package apply

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The inventory of an app is a Secret (its entries hash Secret contents, so it is
// kept as confidential as they are) in the app's namespace.
const (
	inventoryType = "berth.dev/inventory"
	inventoryKey  = "inventory.json"
	// Inventories larger than gzipThreshold are stored gzipped under
	// inventoryGzKey, so that a Secret's 1 MiB holds about 50,000 objects
	// instead of 8,000.
	inventoryGzKey = "inventory.json.gz"
	gzipThreshold  = 256 << 10
	// AnnotationRevision on the inventory Secret records ApplyOptions.Revision
	// of the last apply in which every object applied.
	AnnotationRevision = "berth.dev/revision"
)

// InventoryName returns the name of the Secret holding app's inventory.
func InventoryName(app string) string { return "berth-inventory-" + app }

// Entry is one object in an inventory, with what berth needs to decide that the
// object is unchanged without reading it in full or asking for a dry run.
type Entry struct {
	Group     string `json:"g,omitempty"`
	Version   string `json:"v"`
	Kind      string `json:"k"`
	Namespace string `json:"ns,omitempty"`
	Name      string `json:"n"`
	// Desired hashes the manifest berth applied. Empty when berth recorded the
	// object before applying it (crash safety), which forces the next apply.
	Desired string `json:"d,omitempty"`
	// Fields hashes the managedFields entry of berth's field manager that the API
	// server returned after the apply: when someone else takes over one of
	// berth's fields, that entry changes.
	Fields string `json:"f,omitempty"`
}

// Ref returns the entry's object reference.
func (e Entry) Ref() ObjectRef {
	return ObjectRef{Group: e.Group, Version: e.Version, Kind: e.Kind, Namespace: e.Namespace, Name: e.Name}
}

func entryFor(r ObjectRef) Entry {
	return Entry{Group: r.Group, Version: r.Version, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

// Inventory is the set of objects applied for an app.
type Inventory struct {
	App     string  `json:"app"`
	Entries []Entry `json:"entries"`
	// Revision is what the last apply of the app without failures was told it
	// applied (ApplyOptions.Revision); it is kept on the Secret, not in its data.
	Revision string `json:"-"`
}

type storedInventory struct {
	namespace string
	exists    bool
	// resourceVersion guards against two applies of one app at once.
	resourceVersion string
	byKey           map[string]Entry
	// revision is the stored AnnotationRevision; nextRevision is what the next
	// save writes, the stored one unless an apply completes.
	revision, nextRevision string
}

func (s *storedInventory) sorted() []Entry {
	keys := slices.Sorted(maps.Keys(s.byKey))
	out := make([]Entry, 0, len(keys))
	for _, k := range keys {
		out = append(out, s.byKey[k])
	}
	return out
}

// Inventory returns the inventory of app stored in namespace, or an empty one.
func (e *Engine) Inventory(ctx context.Context, app, namespace string) (*Inventory, error) {
	s, err := e.loadInventory(ctx, app, namespace)
	if err != nil {
		return nil, err
	}
	return &Inventory{App: app, Entries: s.sorted(), Revision: s.revision}, nil
}

// Revision returns the revision recorded by the last apply of app in namespace
// in which every object applied, or "" when there is none.
func (e *Engine) Revision(ctx context.Context, app, namespace string) (string, error) {
	s, err := e.loadInventory(ctx, app, namespace)
	if err != nil {
		return "", err
	}
	return s.revision, nil
}

// completed records that an apply of revision finished without failures: the
// next save writes it.
func (s *storedInventory) completed(revision string) { s.nextRevision = revision }

func (e *Engine) loadInventory(ctx context.Context, app, namespace string) (*storedInventory, error) {
	s := &storedInventory{namespace: namespace, byKey: map[string]Entry{}}
	sec, err := e.kube.CoreV1().Secrets(namespace).Get(ctx, InventoryName(app), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the inventory of app %s (secret %s/%s): %w", app, namespace, InventoryName(app), err)
	}
	s.exists = true
	s.resourceVersion = sec.ResourceVersion
	s.revision = sec.Annotations[AnnotationRevision]
	s.nextRevision = s.revision
	inv, err := decodeInventory(sec.Data)
	if err != nil {
		return nil, fmt.Errorf("the inventory of app %s (secret %s/%s) is corrupt: %w; delete the secret and re-apply to rebuild it (objects removed since then will not be pruned)", app, namespace, InventoryName(app), err)
	}
	for _, en := range inv.Entries {
		s.byKey[en.Ref().key()] = en
	}
	return s, nil
}

// addPrevious records in s the objects that an interrupted apply may have
// created unrecorded (ApplyOptions.Previous), as the inventory would: with
// the app's namespace when namespaced and without one. Objects of kinds the
// cluster does not serve are left out: none of them exists.
func (e *Engine) addPrevious(s *storedInventory, previous []*unstructured.Unstructured, namespace string) {
	for _, o := range previous {
		ref := RefOf(o)
		m, err := e.mappingFor(ref.GroupVersionKind())
		if err != nil {
			continue
		}
		switch {
		case m.namespaced && ref.Namespace == "":
			ref.Namespace = namespace
		case !m.namespaced:
			ref.Namespace = ""
		}
		if _, ok := s.byKey[ref.key()]; !ok {
			s.byKey[ref.key()] = entryFor(ref)
		}
	}
}

// saveInventory writes entries as app's inventory if they differ from what is
// stored, with optimistic concurrency.
func (e *Engine) saveInventory(ctx context.Context, app string, s *storedInventory, next map[string]Entry) error {
	if s.exists && maps.Equal(s.byKey, next) && s.revision == s.nextRevision {
		return nil
	}
	tmp := &storedInventory{byKey: next}
	data, err := encodeInventory(Inventory{App: app, Entries: tmp.sorted()})
	if err != nil {
		return err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: InventoryName(app), Namespace: s.namespace, ResourceVersion: s.resourceVersion,
			Labels: map[string]string{LabelApp: app, LabelManagedBy: ManagedByValue},
		},
		Type: inventoryType,
		Data: data,
	}
	if s.nextRevision != "" {
		sec.Annotations = map[string]string{AnnotationRevision: s.nextRevision}
	}
	var out *corev1.Secret
	if s.exists {
		out, err = e.kube.CoreV1().Secrets(s.namespace).Update(ctx, sec, metav1.UpdateOptions{FieldManager: e.opts.FieldManager})
	} else {
		out, err = e.kube.CoreV1().Secrets(s.namespace).Create(ctx, sec, metav1.CreateOptions{FieldManager: e.opts.FieldManager})
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("writing the inventory of app %s (secret %s/%s): another apply or delete of this app changed it meanwhile; run again once it is done: %w", app, s.namespace, InventoryName(app), err)
	}
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("writing the inventory of app %s: namespace %s does not exist: create it or include it in the manifests: %w", app, s.namespace, err)
	}
	if err != nil {
		return fmt.Errorf("writing the inventory of app %s (secret %s/%s): %w", app, s.namespace, InventoryName(app), err)
	}
	s.exists = true
	s.resourceVersion = out.GetResourceVersion()
	s.byKey = maps.Clone(next)
	s.revision = s.nextRevision
	return nil
}

func (e *Engine) deleteInventory(ctx context.Context, app string, s *storedInventory) error {
	if !s.exists {
		return nil
	}
	err := e.kube.CoreV1().Secrets(s.namespace).Delete(ctx, InventoryName(app), metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{ResourceVersion: &s.resourceVersion},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the inventory of app %s (secret %s/%s): %w", app, s.namespace, InventoryName(app), err)
	}
	s.exists = false
	return nil
}

func encodeInventory(inv Inventory) (map[string][]byte, error) {
	data, err := json.Marshal(inv)
	if err != nil {
		return nil, err
	}
	if len(data) <= gzipThreshold {
		return map[string][]byte{inventoryKey: data}, nil
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return map[string][]byte{inventoryGzKey: b.Bytes()}, nil
}

func decodeInventory(data map[string][]byte) (Inventory, error) {
	var inv Inventory
	raw, ok := data[inventoryKey]
	if gz, isGz := data[inventoryGzKey]; isGz {
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return inv, err
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return inv, err
		}
	} else if !ok {
		return inv, fmt.Errorf("no key %s or %s", inventoryKey, inventoryGzKey)
	}
	err := json.Unmarshal(raw, &inv)
	return inv, err
}

func hashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func hashObject(obj *unstructured.Unstructured) (string, error) {
	b, err := json.Marshal(obj.Object)
	if err != nil {
		return "", err
	}
	return hashBytes(b), nil
}

// managerEntry returns the Apply entry of manager in managedFields.
func managerEntry(fields []metav1.ManagedFieldsEntry, manager string) *metav1.ManagedFieldsEntry {
	for i := range fields {
		f := &fields[i]
		if f.Manager == manager && f.Operation == metav1.ManagedFieldsOperationApply && f.Subresource == "" {
			return f
		}
	}
	return nil
}

func fieldsHash(fields []metav1.ManagedFieldsEntry, manager string) string {
	f := managerEntry(fields, manager)
	if f == nil || f.FieldsV1 == nil {
		return ""
	}
	return hashBytes(append([]byte(f.APIVersion+"\n"), canonicalFields(f.FieldsV1.Raw)...))
}
