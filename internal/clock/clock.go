// Package clock is the time isaclist's engine reads: the real time, or a
// time a test sets, shared by intake, the queue and governance so that a
// test moving it moves all of them.
package clock

import (
	"sync/atomic"
	"time"
)

// Clock is safe for concurrent use; the zero value reads the real time.
type Clock struct {
	f atomic.Pointer[func() time.Time]
}

// Now is the current time.
func (c *Clock) Now() time.Time {
	if c == nil {
		return time.Now()
	}
	if f := c.f.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

// Set makes the clock read the time from f; nil restores the real time.
func (c *Clock) Set(f func() time.Time) {
	if f == nil {
		c.f.Store(nil)
		return
	}
	c.f.Store(&f)
}
