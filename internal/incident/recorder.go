package incident

import (
	"context"
	"fmt"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
)

// MaxTimeline is how many timeline entries an incident keeps (the latest).
const MaxTimeline = 50

// Timeline entry types.
const (
	EventOpened       = "Opened"
	EventRepeated     = "Repeated"
	EventReopened     = "Reopened"
	EventAcknowledged = "Acknowledged"
	EventResolved     = "Resolved"
)

// Recorder writes Incidents through a client.
type Recorder struct {
	Client client.Client
	// Reader reads Incidents; Client when nil. A controller passes its
	// uncached reader, so an update never starts from a stale copy.
	Reader client.Reader
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (r *Recorder) reader() client.Reader {
	if r.Reader != nil {
		return r.Reader
	}
	return r.Client
}

func (r *Recorder) now() metav1.Time {
	if r.Now != nil {
		return metav1.NewTime(r.Now().UTC().Truncate(time.Second))
	}
	return metav1.NewTime(time.Now().UTC().Truncate(time.Second))
}

// Observe records one observation of a cause: it opens the cause's incident,
// or, when it exists, counts a new observation (a different fingerprint) with
// a timeline entry, reopening it when it was resolved. The same observation
// seen again changes nothing.
func (r *Recorder) Observe(ctx context.Context, c Cause) (*berthv1.Incident, error) {
	now := r.now()
	var inc berthv1.Incident
	err := r.reader().Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: c.Name()}, &inc)
	if apierrors.IsNotFound(err) {
		inc = berthv1.Incident{
			ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: c.Name(), Labels: map[string]string{berthv1.LabelIncidentApp: c.App}},
			Spec:       berthv1.IncidentSpec{App: c.App, Cause: c.Cause, Object: c.Object},
		}
		if err := r.Client.Create(ctx, &inc); err != nil {
			return nil, fmt.Errorf("opening incident %s: %w", c.Name(), err)
		}
		inc.Status = berthv1.IncidentStatus{State: berthv1.IncidentOpen, Message: c.Message, Count: 1, FirstSeen: &now, LastSeen: &now, Fingerprint: c.Fingerprint}
		add(&inc, berthv1.IncidentEvent{Time: now, Type: EventOpened, Message: c.Message})
		return &inc, r.writeStatus(ctx, &inc)
	}
	if err != nil {
		return nil, fmt.Errorf("reading incident %s: %w", c.Name(), err)
	}
	if inc.Status.Fingerprint == c.Fingerprint && inc.Status.State != berthv1.IncidentResolved {
		return &inc, nil
	}
	typ := EventRepeated
	if inc.Status.State == berthv1.IncidentResolved || inc.Status.State == "" {
		typ = EventReopened
		inc.Status.State = berthv1.IncidentOpen
	}
	inc.Status.Count++
	inc.Status.Message, inc.Status.Fingerprint, inc.Status.LastSeen = c.Message, c.Fingerprint, &now
	if inc.Status.FirstSeen == nil {
		inc.Status.FirstSeen = &now
	}
	add(&inc, berthv1.IncidentEvent{Time: now, Type: typ, Message: c.Message})
	return &inc, r.writeStatus(ctx, &inc)
}

// ResolveExcept resolves the app's unresolved incidents in namespace whose
// cause is not among active: the app is healthy again as far as they go.
func (r *Recorder) ResolveExcept(ctx context.Context, app, namespace string, active []Cause, why string) ([]string, error) {
	list, err := r.List(ctx, namespace, app)
	if err != nil {
		return nil, err
	}
	return r.ResolveAmong(ctx, list, active, why)
}

// ResolveAmong is ResolveExcept over the app's incidents as the caller
// listed them: a caller with many apps lists them all once.
func (r *Recorder) ResolveAmong(ctx context.Context, list []berthv1.Incident, active []Cause, why string) ([]string, error) {
	keep := map[string]bool{}
	for _, c := range active {
		keep[c.Name()] = true
	}
	var resolved []string
	for i := range list {
		inc := &list[i]
		if keep[inc.Name] || inc.Status.State == berthv1.IncidentResolved {
			continue
		}
		if err := r.resolve(ctx, inc, why, ""); err != nil {
			return resolved, err
		}
		resolved = append(resolved, inc.Name)
	}
	return resolved, nil
}

// List returns the Incidents in namespace (all namespaces when empty) of app
// (all apps when empty), sorted by last seen, newest first.
func (r *Recorder) List(ctx context.Context, namespace, app string) ([]berthv1.Incident, error) {
	var list berthv1.IncidentList
	opts := []client.ListOption{}
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	if app != "" {
		opts = append(opts, client.MatchingLabels{berthv1.LabelIncidentApp: app})
	}
	if err := r.reader().List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("listing incidents: %w", err)
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i].Status.LastSeen, list.Items[j].Status.LastSeen
		if a == nil || b == nil || a.Equal(b) {
			return list.Items[i].Name < list.Items[j].Name
		}
		return b.Before(a)
	})
	return list.Items, nil
}

// Acknowledge marks an incident as being looked at by who.
func (r *Recorder) Acknowledge(ctx context.Context, namespace, name, who, note string) (*berthv1.Incident, error) {
	var inc berthv1.Incident
	if err := r.reader().Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &inc); err != nil {
		return nil, fmt.Errorf("reading incident %s: %w", name, err)
	}
	if inc.Status.State == berthv1.IncidentResolved {
		return nil, fmt.Errorf("incident %s is resolved; nothing to acknowledge", name)
	}
	inc.Status.State = berthv1.IncidentAcknowledged
	add(&inc, berthv1.IncidentEvent{Time: r.now(), Type: EventAcknowledged, Message: note, By: who})
	return &inc, r.writeStatus(ctx, &inc)
}

// Resolve resolves an incident by hand; it opens again if its cause is seen
// again.
func (r *Recorder) Resolve(ctx context.Context, namespace, name, who, note string) (*berthv1.Incident, error) {
	var inc berthv1.Incident
	if err := r.reader().Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &inc); err != nil {
		return nil, fmt.Errorf("reading incident %s: %w", name, err)
	}
	if inc.Status.State == berthv1.IncidentResolved {
		return &inc, nil
	}
	return &inc, r.resolve(ctx, &inc, note, who)
}

func (r *Recorder) resolve(ctx context.Context, inc *berthv1.Incident, why, who string) error {
	now := r.now()
	inc.Status.State, inc.Status.ResolvedAt = berthv1.IncidentResolved, &now
	// A cause seen again after this is a new observation.
	inc.Status.Fingerprint = ""
	add(inc, berthv1.IncidentEvent{Time: now, Type: EventResolved, Message: why, By: who})
	return r.writeStatus(ctx, inc)
}

func add(inc *berthv1.Incident, ev berthv1.IncidentEvent) {
	inc.Status.Timeline = append(inc.Status.Timeline, ev)
	if n := len(inc.Status.Timeline); n > MaxTimeline {
		inc.Status.Timeline = inc.Status.Timeline[n-MaxTimeline:]
	}
}

func (r *Recorder) writeStatus(ctx context.Context, inc *berthv1.Incident) error {
	if err := r.Client.Status().Update(ctx, inc); err != nil {
		return fmt.Errorf("writing the status of incident %s: %w", inc.Name, err)
	}
	return nil
}
