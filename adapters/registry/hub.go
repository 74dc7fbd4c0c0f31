package registry

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// streamBuffer is how many encoded events a presence stream may fall
// behind before it is ended with a resync event.
const streamBuffer = 256

// hub follows the registry service's presence once, encodes each event
// once, and fans the bytes out to every open stream: with 10,000 streams,
// one JSON encoding and a shared slice per change instead of 10,000.
type hub struct {
	mu     sync.RWMutex
	subs   map[*hubSub]struct{}
	lastID atomic.Pointer[string] // ID of the newest event published, for resuming
}

type hubSub struct {
	ch     chan hubEvent
	closed bool // guarded by hub.mu (write)
}

// hubEvent is one encoded SSE block and the event's ID ("" when the
// service gives none).
type hubEvent struct {
	id string
	b  []byte
}

func newHub() *hub { return &hub{subs: make(map[*hubSub]struct{})} }

// position is the ID of the newest event the hub has passed on ("" none).
func (h *hub) position() string {
	if p := h.lastID.Load(); p != nil {
		return *p
	}
	return ""
}

func (h *hub) subscribe() *hubSub {
	s := &hubSub{ch: make(chan hubEvent, streamBuffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *hubSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

func (h *hub) publish(b hubEvent) {
	if b.id != "" {
		h.lastID.Store(&b.id)
	}
	var slow []*hubSub
	h.mu.RLock()
	for s := range h.subs {
		select {
		case s.ch <- b:
		default:
			slow = append(slow, s)
		}
	}
	h.mu.RUnlock()
	for _, s := range slow {
		h.unsubscribe(s)
	}
}

// dropAll ends every stream, so each resyncs (the hub itself lost events).
func (h *hub) dropAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		delete(h.subs, s)
		if !s.closed {
			s.closed = true
			close(s.ch)
		}
	}
}

// watchHub subscribes to the service's presence: with IDs when it offers
// them (ports.PresenceFeed: live changes only, each SSE block tagged
// "id:"), else its plain Watch (whose first events are the online set).
func watchHub(ctx context.Context, svc ports.RegistryService) (<-chan hubEvent, error) {
	out := make(chan hubEvent)
	if f, ok := svc.(ports.PresenceFeed); ok {
		in, err := f.WatchUpdates(ctx)
		if err != nil {
			return nil, err
		}
		go func() {
			defer close(out)
			for u := range in {
				out <- hubEvent{id: u.ID, b: encodeEventID(u.ID, u.Event)}
			}
		}()
		return out, nil
	}
	in, err := svc.Watch(ctx)
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(out)
		for ev := range in {
			out <- hubEvent{b: encodeEvent(ev)}
		}
	}()
	return out, nil
}

// run follows events, then watches the service again whenever dropped,
// until ctx is done. The first subscription is made by the caller before
// it starts serving, so no stream can open before the hub follows the
// service.
func (h *hub) run(ctx context.Context, svc ports.RegistryService, events <-chan hubEvent, log func(msg string, args ...any)) {
	first := true
	for ctx.Err() == nil {
		var err error
		if events == nil {
			events, err = watchHub(ctx, svc)
		}
		if err != nil {
			log("presence hub: watch", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if !first {
			h.dropAll()
		}
		first = false
		for ev := range events {
			h.publish(ev)
		}
		events = nil
	}
}

func encodeEvent(ev domain.PresenceEvent) []byte { return encodeEventID("", ev) }

// encodeEventID encodes ev as an SSE block with its ID ("" none).
func encodeEventID(id string, ev domain.PresenceEvent) []byte {
	var buf bytes.Buffer
	if id != "" {
		buf.WriteString("id: " + id + "\n")
	}
	writeEvent(&buf, ev)
	return buf.Bytes()
}
