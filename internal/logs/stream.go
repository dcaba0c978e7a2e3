package logs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// Options say which lines Stream reads.
type Options struct {
	// Follow keeps reading: new lines, and the pods that start afterwards.
	Follow bool
	// Since, when positive, reads only lines newer than this.
	Since time.Duration
	// Previous reads the logs of each container's previous run (those that
	// restarted), not of the current one.
	Previous bool
	// TailLines, when positive, starts each container's log this many lines
	// before its end.
	TailLines int64
}

// Line is one line of one container's log, or (Err set) why a container's log
// could not be read; the stream goes on with the others.
type Line struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Container string `json:"container"`
	Text      string `json:"line"`
	Err       error  `json:"-"`
}

// Stream reads the logs of every started container of the selection's pods
// and sends their lines on the returned channel, which is closed when every
// log has been read (without Follow) or ctx ends (with Follow). Without
// Follow, containers are read one after the other, pods by name and each
// pod's containers in its order, so the output is stable; with Follow they are read at once and
// the lines interleave as they come, and a watch on the pods adds each pod
// (and each restart of a container) as it starts.
func Stream(ctx context.Context, cs kubernetes.Interface, sel *Selection, opts Options) (<-chan Line, error) {
	s := &streamer{cs: cs, sel: sel, opts: opts, out: make(chan Line, 64), started: map[string]bool{}}
	lists := map[string]*corev1.PodList{}
	for _, ns := range sel.Namespaces() {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing pods in namespace %s: %w", ns, err)
		}
		lists[ns] = l
	}
	if !opts.Follow {
		go s.readAll(ctx, lists)
		return s.out, nil
	}
	for ns, l := range lists {
		for i := range l.Items {
			s.pod(ctx, &l.Items[i])
		}
		if err := s.watch(ctx, ns, l.ResourceVersion); err != nil {
			return nil, err
		}
	}
	go func() {
		<-ctx.Done()
		s.wg.Wait()
		close(s.out)
	}()
	return s.out, nil
}

type streamer struct {
	cs   kubernetes.Interface
	sel  *Selection
	opts Options
	out  chan Line

	wg      sync.WaitGroup
	mu      sync.Mutex
	started map[string]bool // namespace/pod/container/restarts being or been read
}

// readAll reads every container's log once, in a stable order.
func (s *streamer) readAll(ctx context.Context, lists map[string]*corev1.PodList) {
	defer close(s.out)
	var pods []*corev1.Pod
	for _, l := range lists {
		for i := range l.Items {
			p := &l.Items[i]
			if _, ok := s.sel.Owner(p.Namespace, p.Name, p.Labels); ok {
				pods = append(pods, p)
			}
		}
	}
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
	for _, p := range pods {
		for _, c := range podContainers(p, s.opts.Previous) {
			if !s.read(ctx, p, c) {
				return
			}
		}
	}
}

// pod starts reading each started container of p that is not read yet.
func (s *streamer) pod(ctx context.Context, p *corev1.Pod) {
	if _, ok := s.sel.Owner(p.Namespace, p.Name, p.Labels); !ok || p.DeletionTimestamp != nil {
		return
	}
	restarts := map[string]int32{}
	for _, st := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		restarts[st.Name] = st.RestartCount
	}
	for _, c := range podContainers(p, s.opts.Previous) {
		key := fmt.Sprintf("%s/%s/%s/%d", p.Namespace, p.Name, c, restarts[c])
		s.mu.Lock()
		seen := s.started[key]
		s.started[key] = true
		s.mu.Unlock()
		if seen {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.read(ctx, p, c)
		}()
	}
}

// watch follows the namespace's pods from resourceVersion until ctx ends.
func (s *streamer) watch(ctx context.Context, ns, resourceVersion string) error {
	pods := s.cs.CoreV1().Pods(ns)
	w, err := watchtools.NewRetryWatcherWithContext(ctx, resourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return pods.Watch(ctx, o)
		},
	})
	if err != nil {
		return fmt.Errorf("watching pods in namespace %s: %w", ns, err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				if p, isPod := ev.Object.(*corev1.Pod); isPod && (ev.Type == watch.Added || ev.Type == watch.Modified) {
					s.pod(ctx, p)
				}
			}
		}
	}()
	return nil
}

// read sends the lines of one container's log; false when ctx ended.
func (s *streamer) read(ctx context.Context, p *corev1.Pod, container string) bool {
	lo := &corev1.PodLogOptions{Container: container, Follow: s.opts.Follow, Previous: s.opts.Previous}
	if s.opts.Since > 0 {
		secs := int64((s.opts.Since + time.Second - 1) / time.Second)
		lo.SinceSeconds = &secs
	}
	if s.opts.TailLines > 0 {
		lo.TailLines = &s.opts.TailLines
	}
	line := Line{Namespace: p.Namespace, Pod: p.Name, Container: container}
	rc, err := s.cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, lo).Stream(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		line.Err = fmt.Errorf("reading the log of pod %s container %s: %w", p.Name, container, err)
		return s.send(ctx, line)
	}
	defer rc.Close()
	r := bufio.NewReader(rc)
	for {
		text, err := r.ReadString('\n')
		if text != "" {
			line.Text = strings.TrimSuffix(text, "\n")
			if !s.send(ctx, line) {
				return false
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return ctx.Err() == nil
			}
			line.Text, line.Err = "", fmt.Errorf("reading the log of pod %s container %s: %w", p.Name, container, err)
			return s.send(ctx, line)
		}
	}
}

func (s *streamer) send(ctx context.Context, l Line) bool {
	select {
	case s.out <- l:
		return true
	case <-ctx.Done():
		return false
	}
}
