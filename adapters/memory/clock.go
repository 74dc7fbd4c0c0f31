package memory

import (
	"sync"
	"time"

	"github.com/chatx/chatx/ports"
)

var _ ports.Clock = (*Clock)(nil)

// Clock is a ports.Clock that tests can drive. Made by NewClock it is frozen
// at its start time and moves only by Set and Advance; made by NewRealClock it
// follows the system clock, shifted by whatever Advance added, until Set
// freezes it. It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	frozen bool
	at     time.Time     // the time when frozen
	offset time.Duration // added to time.Now when not frozen
}

// NewClock returns a clock frozen at start.
func NewClock(start time.Time) *Clock {
	return &Clock{frozen: true, at: start}
}

// NewRealClock returns a clock that follows the system clock.
func NewRealClock() *Clock { return &Clock{} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return c.at
	}
	return time.Now().Add(c.offset)
}

// Set freezes the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen, c.at = true, t
}

// Advance moves the clock forward by d (backward if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		c.at = c.at.Add(d)
	} else {
		c.offset += d
	}
}
