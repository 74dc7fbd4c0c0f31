package registry

import (
	"bytes"
	"context"
	"sync"
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
	mu   sync.RWMutex
	subs map[*hubSub]struct{}
}

type hubSub struct {
	ch     chan []byte
	closed bool // guarded by hub.mu (write)
}

func newHub() *hub { return &hub{subs: make(map[*hubSub]struct{})} }

func (h *hub) subscribe() *hubSub {
	s := &hubSub{ch: make(chan []byte, streamBuffer)}
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

func (h *hub) publish(b []byte) {
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

// run follows events, then svc.Watch again whenever dropped, until ctx is
// done. The first subscription is made by the caller before it starts
// serving, so no stream can open before the hub follows the service.
func (h *hub) run(ctx context.Context, svc ports.RegistryService, events <-chan domain.PresenceEvent, log func(msg string, args ...any)) {
	first := true
	for ctx.Err() == nil {
		var err error
		if events == nil {
			events, err = svc.Watch(ctx)
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
			h.publish(encodeEvent(ev))
		}
		events = nil
	}
}

func encodeEvent(ev domain.PresenceEvent) []byte {
	var buf bytes.Buffer
	writeEvent(&buf, ev)
	return buf.Bytes()
}
