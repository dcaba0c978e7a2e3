package localcluster

import "time"

// Event reports progress of a long operation. A step is announced once when it
// starts (Done false) and once when it ends (Done true, with Elapsed and Err).
type Event struct {
	Step    string
	Detail  string
	Done    bool
	Elapsed time.Duration
	Err     error
}

// ProgressFunc receives events; it must not block for long.
type ProgressFunc func(Event)

// step runs fn as a named step, reporting its start and end to progress.
func step(progress ProgressFunc, name, detail string, fn func() error) error {
	if progress == nil {
		return fn()
	}
	progress(Event{Step: name, Detail: detail})
	start := time.Now()
	err := fn()
	progress(Event{Step: name, Detail: detail, Done: true, Elapsed: time.Since(start), Err: err})
	return err
}
