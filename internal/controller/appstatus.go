package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	berthv1 "berth.dev/berth/api/v1alpha1"
)

// appStatusWriters bounds the WorkspaceApp writes in flight.
const appStatusWriters = 16

// appStatuses keeps each app's WorkspaceApp: what this process last wrote,
// read from the API once per workspace after a start, so that an app's state
// is written only when it changes and a reconcile that changes nothing writes
// nothing.
type appStatuses struct {
	client client.Client

	mu   sync.Mutex
	byWS map[types.NamespacedName]map[string]*berthv1.WorkspaceApp
}

func newAppStatuses(c client.Client) *appStatuses {
	return &appStatuses{client: c, byWS: map[types.NamespacedName]map[string]*berthv1.WorkspaceApp{}}
}

// load returns the last known state of every app of ws, by app name.
func (s *appStatuses) load(ctx context.Context, ws *berthv1.Workspace) (map[string]berthv1.AppStatus, error) {
	nn := types.NamespacedName{Namespace: ws.Namespace, Name: ws.Name}
	s.mu.Lock()
	known, ok := s.byWS[nn]
	s.mu.Unlock()
	if !ok {
		list, err := ListWorkspaceApps(ctx, s.client, ws)
		if err != nil {
			return nil, err
		}
		known = map[string]*berthv1.WorkspaceApp{}
		for i := range list {
			known[list[i].Spec.App] = &list[i]
		}
		s.mu.Lock()
		s.byWS[nn] = known
		s.mu.Unlock()
	}
	out := map[string]berthv1.AppStatus{}
	s.mu.Lock()
	for name, a := range known {
		out[name] = *a.Status.DeepCopy()
	}
	s.mu.Unlock()
	return out, nil
}

// forget drops what is known of ws (deleted: its WorkspaceApps go with it).
func (s *appStatuses) forget(nn types.NamespacedName) {
	s.mu.Lock()
	delete(s.byWS, nn)
	s.mu.Unlock()
}

// write makes the WorkspaceApps of ws say statuses: it creates the missing
// ones, writes those whose state changed and deletes those of apps that are
// no longer in statuses. Unchanged apps cost no request.
func (s *appStatuses) write(ctx context.Context, ws *berthv1.Workspace, statuses map[string]berthv1.AppStatus) error {
	nn := types.NamespacedName{Namespace: ws.Namespace, Name: ws.Name}
	s.mu.Lock()
	known := s.byWS[nn]
	if known == nil {
		known = map[string]*berthv1.WorkspaceApp{}
		s.byWS[nn] = known
	}
	type job struct {
		name   string
		cur    *berthv1.WorkspaceApp // nil: create
		status *berthv1.AppStatus    // nil: delete
	}
	var jobs []job
	for name, st := range statuses {
		cur := known[name]
		if cur != nil && equality.Semantic.DeepEqual(cur.Status, st) {
			continue
		}
		jobs = append(jobs, job{name: name, cur: cur, status: &st})
	}
	for name, cur := range known {
		if _, ok := statuses[name]; !ok {
			jobs = append(jobs, job{name: name, cur: cur})
		}
	}
	s.mu.Unlock()

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, appStatusWriters)
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var (
				obj *berthv1.WorkspaceApp
				err error
			)
			if j.status == nil {
				err = client.IgnoreNotFound(s.client.Delete(ctx, j.cur))
			} else {
				obj, err = s.writeOne(ctx, ws, j.name, j.cur, *j.status)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("app %s: %w", j.name, err))
				return
			}
			s.mu.Lock()
			if obj == nil {
				delete(known, j.name)
			} else {
				known[j.name] = obj
			}
			s.mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("writing the WorkspaceApps of %s: %w", nn, err)
	}
	return nil
}

// stream writes apps' states as the apps finish, appStatusWriters at a time,
// while the others still deploy: a long sync shows its progress app by app
// and does not end with a burst of writes. send never blocks (capacity is how
// many apps will be sent at most); wait waits for the writes. A write that
// fails is left for write, at the end of the reconcile, to make again.
func (s *appStatuses) stream(ctx context.Context, ws *berthv1.Workspace, capacity int) (send func(app string, st berthv1.AppStatus), wait func()) {
	type job struct {
		app string
		st  berthv1.AppStatus
	}
	ch := make(chan job, capacity)
	var wg sync.WaitGroup
	for range appStatusWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				_ = s.put(ctx, ws, j.app, j.st)
			}
		}()
	}
	return func(app string, st berthv1.AppStatus) { ch <- job{app, st} }, func() { close(ch); wg.Wait() }
}

// put writes the state of one app of ws, when it changed.
func (s *appStatuses) put(ctx context.Context, ws *berthv1.Workspace, app string, st berthv1.AppStatus) error {
	nn := types.NamespacedName{Namespace: ws.Namespace, Name: ws.Name}
	s.mu.Lock()
	known := s.byWS[nn]
	if known == nil {
		known = map[string]*berthv1.WorkspaceApp{}
		s.byWS[nn] = known
	}
	cur := known[app]
	s.mu.Unlock()
	if cur != nil && equality.Semantic.DeepEqual(cur.Status, st) {
		return nil
	}
	obj, err := s.writeOne(ctx, ws, app, cur, st)
	if err != nil {
		return err
	}
	s.mu.Lock()
	known[app] = obj
	s.mu.Unlock()
	return nil
}

// writeOne creates the WorkspaceApp of app with its state (when cur is nil)
// or writes its state, returning the object as written. The whole object is
// written (a patch computed against what this process holds could leave out
// fields the object on the server lacks); a conflict means another writer
// came between: write over the object as it is now.
func (s *appStatuses) writeOne(ctx context.Context, ws *berthv1.Workspace, app string, cur *berthv1.WorkspaceApp, st berthv1.AppStatus) (*berthv1.WorkspaceApp, error) {
	if cur == nil {
		obj := &berthv1.WorkspaceApp{Spec: berthv1.WorkspaceAppSpec{Workspace: ws.Name, App: app}, Status: st}
		obj.Name, obj.Namespace = berthv1.WorkspaceAppName(ws.Name, app), ws.Namespace
		obj.Labels = map[string]string{berthv1.LabelWorkspace: ws.Name}
		if err := controllerutil.SetControllerReference(ws, obj, s.client.Scheme()); err != nil {
			return nil, err
		}
		err := s.client.Create(ctx, obj)
		if err == nil {
			return obj, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		// Left by an earlier process that this one has not read.
		cur = &berthv1.WorkspaceApp{}
		if err := s.client.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
			return nil, err
		}
	}
	next := cur.DeepCopy()
	next.Status = st
	err := s.client.Update(ctx, next)
	if apierrors.IsConflict(err) {
		if err = s.client.Get(ctx, client.ObjectKeyFromObject(cur), next); err == nil {
			next.Status = st
			err = s.client.Update(ctx, next)
		}
	}
	if err != nil {
		return nil, err
	}
	return next, nil
}

// ListWorkspaceApps returns the WorkspaceApps of ws, one per app it reports.
func ListWorkspaceApps(ctx context.Context, r client.Reader, ws *berthv1.Workspace) ([]berthv1.WorkspaceApp, error) {
	var list berthv1.WorkspaceAppList
	if err := r.List(ctx, &list, client.InNamespace(ws.Namespace), client.MatchingLabels{berthv1.LabelWorkspace: ws.Name}); err != nil {
		return nil, fmt.Errorf("listing the WorkspaceApps of %s/%s: %w", ws.Namespace, ws.Name, err)
	}
	return list.Items, nil
}
