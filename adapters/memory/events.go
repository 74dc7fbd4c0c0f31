package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/chatx/chatx/ports"
)

var _ ports.EventSink = (*EventRecorder)(nil)

// DefaultMaxEvents caps the events an EventRecorder keeps; later ones are
// counted in Dropped and not kept.
const DefaultMaxEvents = 1 << 20

// EventRecorder is a ports.EventSink that records every event so a test can
// read them or wait for one. Publish never blocks on a waiter. It is safe for
// concurrent use.
type EventRecorder struct {
	mu      sync.Mutex
	events  []ports.Event
	dropped int
	max     int
	changed chan struct{} // closed and replaced at each Publish
}

// NewEventRecorder returns an empty recorder.
func NewEventRecorder() *EventRecorder {
	return &EventRecorder{max: DefaultMaxEvents, changed: make(chan struct{})}
}

// Publish records e.
func (r *EventRecorder) Publish(e ports.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) >= r.max {
		r.dropped++
		return
	}
	r.events = append(r.events, e)
	close(r.changed)
	r.changed = make(chan struct{})
}

// Events returns a copy of the events recorded so far, in order.
func (r *EventRecorder) Events() []ports.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ports.Event(nil), r.events...)
}

// Len is the number of events recorded so far; pass it to WaitFrom to wait
// only for later events.
func (r *EventRecorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// Dropped counts events not kept because the recorder was full.
func (r *EventRecorder) Dropped() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// WaitFor returns the first recorded event (past or future) that match
// accepts, waiting up to timeout.
func (r *EventRecorder) WaitFor(timeout time.Duration, match func(ports.Event) bool) (ports.Event, error) {
	e, _, err := r.WaitFrom(0, timeout, match)
	return e, err
}

// WaitFrom returns the first event at index from or later that match accepts,
// and its index, waiting up to timeout.
func (r *EventRecorder) WaitFrom(from int, timeout time.Duration, match func(ports.Event) bool) (ports.Event, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.WaitContext(ctx, from, match)
}

// WaitContext is WaitFrom until ctx is done.
func (r *EventRecorder) WaitContext(ctx context.Context, from int, match func(ports.Event) bool) (ports.Event, int, error) {
	i := max(from, 0)
	for {
		r.mu.Lock()
		for ; i < len(r.events); i++ {
			if match(r.events[i]) {
				e := r.events[i]
				r.mu.Unlock()
				return e, i, nil
			}
		}
		changed := r.changed
		n := len(r.events)
		r.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, -1, fmt.Errorf("no matching event among %d after %d: %w", n, from, ctx.Err())
		}
	}
}

// WaitForEvent waits up to timeout for the first recorded event of type T
// that match accepts (nil match: any T).
func WaitForEvent[T ports.Event](r *EventRecorder, timeout time.Duration, match func(T) bool) (T, error) {
	e, err := r.WaitFor(timeout, func(e ports.Event) bool {
		t, ok := e.(T)
		return ok && (match == nil || match(t))
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return e.(T), nil
}
