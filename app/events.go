package app

import (
	"context"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Bus buffers for each subscriber.
const (
	// busChannelSize is the channel a subscriber reads from.
	busChannelSize = 64
	// busMaxBacklog bounds what a subscriber that stopped reading can make us
	// hold. A subscriber that falls this far behind is dropped: its channel
	// is closed, and it must subscribe again and reload from the stores
	// (every message is in the MessageStore, every transfer in the
	// TransferStore).
	busMaxBacklog = 16384
)

// Bus is the event fan-out of a client: it implements ports.EventSink and
// hands every event to every subscriber, in publication order.
//
// Publish never blocks on a subscriber. Each subscriber has a queue served by
// its own goroutine; while that queue is empty and the subscriber's channel
// has room, Publish puts the event in the channel itself. A progress tick (a TransferEvent of a transfer in
// progress) replaces the tick of the same transfer still waiting in the
// queue, unless a state change of that transfer was queued after it; so a
// slow subscriber sees fewer ticks, always the newest one, and every state
// change in order. Every other event (messages, message states, presence,
// key changes) is always queued, up to busMaxBacklog events, past which the
// subscriber is dropped and its channel closed rather than growing memory
// without bound. So a slow subscriber loses progress ticks, never messages;
// a dead one is cut off, and nothing is lost that the stores do not hold.
type Bus struct {
	mu   sync.Mutex
	subs map[*busSub]struct{}
}

var _ ports.EventSink = (*Bus)(nil)

// NewBus makes an empty bus.
func NewBus() *Bus { return &Bus{subs: make(map[*busSub]struct{})} }

type busSub struct {
	mu    sync.Mutex
	queue []ports.Event
	wake  chan struct{}
	// out is the subscriber's channel. offer sends to it itself when
	// nothing is queued or in the pump's hands (busy), so an event to a
	// subscriber that keeps up costs no hand-off to the pump.
	out     chan<- ports.Event
	busy    bool
	dropped bool // or the pump has stopped: out is closed, or about to be
}

// Subscribe returns a channel of every event published from now on. The
// channel is closed when ctx is done or the subscriber is dropped for not
// reading (see Bus).
func (b *Bus) Subscribe(ctx context.Context) <-chan ports.Event {
	out := make(chan ports.Event, busChannelSize)
	s := &busSub{wake: make(chan struct{}, 1), out: out}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go b.pump(ctx, s, out)
	return out
}

func (b *Bus) pump(ctx context.Context, s *busSub, out chan<- ports.Event) {
	defer func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
		s.mu.Lock()
		s.dropped, s.queue = true, nil // offer sends to out no more
		s.mu.Unlock()
		close(out)
	}()
	for {
		s.mu.Lock()
		if s.dropped {
			s.mu.Unlock()
			return
		}
		var next ports.Event
		if len(s.queue) > 0 {
			next = s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			if len(s.queue) == 0 {
				s.queue = nil // let the backing array go
			}
		}
		s.busy = next != nil
		s.mu.Unlock()
		if next == nil {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case out <- next:
		}
	}
}

// Publish hands e to every subscriber without blocking.
func (b *Bus) Publish(e ports.Event) {
	if e == nil {
		return
	}
	b.mu.Lock()
	subs := make([]*busSub, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.offer(e)
	}
}

func isProgressTick(e ports.Event) (domain.TransferID, bool) {
	te, ok := e.(ports.TransferEvent)
	if !ok || te.Transfer.State() != domain.TransferInProgress {
		return domain.TransferID{}, false
	}
	return te.Transfer.ID(), true
}

func (s *busSub) offer(e ports.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped {
		return
	}
	if id, tick := isProgressTick(e); tick {
		// Replace the newest queued event of this transfer if it is a tick
		// too; never jump over a state change of the same transfer.
		for i := len(s.queue) - 1; i >= 0; i-- {
			te, ok := s.queue[i].(ports.TransferEvent)
			if !ok || te.Transfer.ID() != id {
				continue
			}
			if _, queuedTick := isProgressTick(te); queuedTick {
				s.queue[i] = e
				return
			}
			break
		}
	}
	if len(s.queue) == 0 && !s.busy {
		// Every earlier event is in out already: e may follow it there.
		select {
		case s.out <- e:
			return
		default:
		}
	}
	if len(s.queue) >= busMaxBacklog {
		s.dropped = true
		s.queue = nil
	} else {
		s.queue = append(s.queue, e)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
