// Package heappeak measures the peak heap of a benchmark loop, for the
// fan-out benchmarks of packages pgp and smime, which compare it as a
// ratio in one run (allocs/op counts what was allocated, not what was
// held at once).
package heappeak

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// Sampler samples the heap in the background: the peak of live plus
// not-yet-collected objects, above what was live when it started (the
// body and the keys).
type Sampler struct {
	stop, done chan struct{}
	base, peak uint64
}

const heapMetric = "/memory/classes/heap/objects:bytes"

// Start collects garbage, notes the heap, and samples it every 500 µs.
func Start() *Sampler {
	runtime.GC()
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	h := &Sampler{stop: make(chan struct{}), done: make(chan struct{}), base: s[0].Value.Uint64()}
	h.peak = h.base
	go func() {
		defer close(h.done)
		t := time.NewTicker(500 * time.Microsecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > h.peak {
				h.peak = v
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// Report stops sampling and reports the peak above the start as
// peak-heap-MB.
func (h *Sampler) Report(b *testing.B) {
	close(h.stop)
	<-h.done
	b.ReportMetric(float64(h.peak-h.base)/1e6, "peak-heap-MB")
}
