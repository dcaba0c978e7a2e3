package cli

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/internal/localcluster"
)

// syncBuffer is a bytes.Buffer safe for the printer's ticker goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressSaysWhatItWaitsForAndForHowLong(t *testing.T) {
	var out syncBuffer
	p := newProgress(&out)
	p.stillEvery = 10 * time.Millisecond
	p.Event(localcluster.Event{Step: "build kubernetes v1.34.4", Detail: "log: /x.log"})
	// Wait for the printer's own report rather than for a fixed time.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "still waiting: build kubernetes v1.34.4") {
		if time.Now().After(deadline) {
			t.Fatalf("no 'still waiting' line while the step ran:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Event(localcluster.Event{Step: "build kubernetes v1.34.4", Done: true, Elapsed: 3 * time.Minute})
	p.Event(localcluster.Event{Step: "wait for etcd"})
	p.Event(localcluster.Event{Step: "wait for etcd", Done: true, Elapsed: 1234 * time.Millisecond, Err: errors.New("x")})
	p.Close()
	got := out.String()
	for _, want := range []string{
		"• build kubernetes v1.34.4 log: /x.log\n",
		"✓ build kubernetes v1.34.4 (3m0s)\n",
		"✗ wait for etcd (1.2s)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	// Once a step has ended, its ticker never writes again.
	_, after, _ := strings.Cut(got, "✓ build kubernetes v1.34.4")
	if strings.Contains(after, "still waiting: build kubernetes") {
		t.Errorf("a 'still waiting' line came after the step ended:\n%s", got)
	}
}
