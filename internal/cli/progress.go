package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/localcluster"
)

// progress prints the steps of a long operation. On a terminal the running step's
// line shows a live elapsed time; elsewhere (logs, CI) a line is added every
// stillEvery while a step runs, so a silent wait is never mistaken for a hang.
type progress struct {
	w          io.Writer
	tty        bool
	stillEvery time.Duration

	mu   sync.Mutex
	done chan struct{}
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w), stillEvery: 30 * time.Second}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Event is a localcluster.ProgressFunc.
func (p *progress) Event(e localcluster.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.event(e)
}

// Lifecycle prints a lifecycle event: steps like localcluster's, and notes (what
// a step waits for) as indented lines under it.
func (p *progress) Lifecycle(e lifecycle.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Note {
		if p.tty {
			fmt.Fprint(p.w, "\r\033[K")
		}
		fmt.Fprintf(p.w, "    %s\n", e.Message)
		return
	}
	p.event(localcluster.Event{Step: e.Message, Done: e.Done, Elapsed: e.Elapsed, Err: e.Err})
}

func (p *progress) event(e localcluster.Event) {
	if p.done != nil {
		close(p.done)
		p.done = nil
	}
	if e.Done {
		mark := "✓"
		if e.Err != nil {
			mark = "✗"
		}
		if p.tty {
			fmt.Fprint(p.w, "\r\033[K")
		}
		fmt.Fprintf(p.w, "%s %s (%s)\n", mark, e.Step, round(e.Elapsed))
		return
	}
	line := "• " + e.Step
	if e.Detail != "" {
		line += " " + e.Detail
	}
	if p.tty {
		fmt.Fprint(p.w, line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.done = make(chan struct{})
	go p.tick(e.Step, p.done)
}

func (p *progress) tick(stepName string, done chan struct{}) {
	start := time.Now()
	every := p.stillEvery
	if p.tty {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			p.mu.Lock()
			select {
			case <-done:
				p.mu.Unlock()
				return
			default:
			}
			if p.tty {
				fmt.Fprintf(p.w, "\r\033[K• %s (%s)", stepName, round(time.Since(start)))
			} else {
				fmt.Fprintf(p.w, "  still waiting: %s (%s)\n", stepName, round(time.Since(start)))
			}
			p.mu.Unlock()
		}
	}
}

// Close stops the ticker of a step that never reported its end.
func (p *progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		close(p.done)
		p.done = nil
		if p.tty {
			fmt.Fprintln(p.w)
		}
	}
}

func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// step reports fn as one step.
func (p *progress) step(name string, fn func() error) error {
	p.Event(localcluster.Event{Step: name})
	start := time.Now()
	err := fn()
	p.Event(localcluster.Event{Step: name, Done: true, Elapsed: time.Since(start), Err: err})
	return err
}
