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
	// ch carries pointers: one event is shared by every stream, and a
	// buffer of 256 costs 2 KiB per stream, not 10 KiB of copies.
	ch     chan *hubEvent
	closed bool // guarded by hub.mu (write)
}

// hubEvent is one change as each stream writes it: the encoded SSE block
// of one event, or the blocks of the events of one change, which each
// stream writes in one write (a replaced session's offline and the new
// session's online: ports.PresenceUpdate.More). id is the ID of the last
// block ("" when the service gives none).
type hubEvent struct {
	id string
	b  []byte
	// heads are where each block starts in b and its ID, when b holds
	// more than one (nil otherwise): a stream that already sent the first
	// block (a resumed stream's replay) writes only the rest.
	heads []hubHead
}

type hubHead struct {
	id  string
	off int
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
	s := &hubSub{ch: make(chan *hubEvent, streamBuffer)}
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

func (h *hub) publish(b *hubEvent) {
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
// Updates marked More are joined with the ones that follow into one
// hubEvent; without the mark (a service without it, or a pair that came
// from another node through the shared bus) each update is an event of
// its own, which each stream may write separately — the same bytes, in
// the same order.
func watchHub(ctx context.Context, svc ports.RegistryService) (<-chan *hubEvent, error) {
	out := make(chan *hubEvent)
	if f, ok := svc.(ports.PresenceFeed); ok {
		in, err := f.WatchUpdates(ctx)
		if err != nil {
			return nil, err
		}
		go func() {
			defer close(out)
			for u := range in {
				out <- joinUpdates(u, in)
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
			out <- &hubEvent{b: encodeEvent(ev)}
		}
	}()
	return out, nil
}

// joinUpdates encodes u and, while the last one read is marked More, the
// updates after it from in, into one event. The service sends the updates
// of one change together, so this waits for nothing; when in closes
// between them, the event holds what came.
func joinUpdates(u ports.PresenceUpdate, in <-chan ports.PresenceUpdate) *hubEvent {
	ev := &hubEvent{id: u.ID, b: encodeEventID(u.ID, u.Event)}
	for u.More {
		next, ok := <-in
		if !ok {
			break
		}
		if ev.heads == nil {
			ev.heads = []hubHead{{id: ev.id}}
		}
		ev.heads = append(ev.heads, hubHead{id: next.ID, off: len(ev.b)})
		ev.b = append(ev.b, encodeEventID(next.ID, next.Event)...)
		ev.id, u = next.ID, next
	}
	return ev
}

// since is what of e a stream whose last event written was last still has
// to write: all of it when either ID is unknown, nothing when last is e's
// ID or later, else the blocks after last.
func (e *hubEvent) since(last string) []byte {
	if !e.after(last) {
		return nil
	}
	if last != "" {
		for _, h := range e.heads {
			if h.id == "" || ports.CompareEventIDs(h.id, last) > 0 {
				return e.b[h.off:]
			}
		}
	}
	return e.b
}

// run follows events, then watches the service again whenever dropped,
// until ctx is done. The first subscription is made by the caller before
// it starts serving, so no stream can open before the hub follows the
// service.
func (h *hub) run(ctx context.Context, svc ports.RegistryService, events <-chan *hubEvent, log func(msg string, args ...any)) {
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
