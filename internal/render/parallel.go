package render

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallel calls f(0) ... f(n-1) on up to GOMAXPROCS goroutines and returns
// the error of the lowest index that failed, so the error does not depend on
// scheduling. Decoding and encoding the objects of a large chart (megabytes
// of CRDs) are independent per file and dominate the time of a render.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				errs[i] = f(i)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
