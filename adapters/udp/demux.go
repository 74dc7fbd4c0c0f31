package udp

import (
	"context"
	"net"
	"sync"
	"sync/atomic"

	"github.com/pion/stun/v3"
)

// maxPacket is the largest non-QUIC datagram read (STUN answers and probes
// are far smaller).
const maxPacket = 1500

// readNonQUIC takes the datagrams quic-go recognised as not QUIC (first two
// bits clear, RFC 9443) off the shared socket and hands them on: STUN
// answers to the request waiting for their transaction ID, punching probes
// to the puncher. Anything else is counted and dropped.
func (t *Transport) readNonQUIC(ctx context.Context) {
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.qt.ReadNonQUICPacket(ctx, buf)
		if err != nil {
			return
		}
		b := buf[:n]
		switch {
		case stun.IsMessage(b):
			if !t.stun.deliver(b, from) {
				t.drops.drop(t, "stun message nobody waits for", from)
			}
		case isProbe(b):
			t.punch.handle(t, b, from)
		default:
			t.drops.drop(t, "unknown non-QUIC packet", from)
		}
	}
}

// dropCounter counts dropped datagrams; each is logged at debug level.
type dropCounter struct{ n atomic.Int64 }

func (d *dropCounter) drop(t *Transport, why string, from net.Addr) {
	n := d.n.Add(1)
	t.log.Debug("dropped datagram", "why", why, "from", from.String(), "dropped", n)
}

// stunWaiters routes STUN answers to the request that waits for them.
type stunWaiters struct {
	mu sync.Mutex
	m  map[[stun.TransactionIDSize]byte]stunWaiter
}

type stunWaiter struct {
	from net.Addr // where the answer must come from
	ch   chan []byte
}

// wait registers a transaction; cancel removes it.
func (s *stunWaiters) wait(id [stun.TransactionIDSize]byte, from net.Addr) (<-chan []byte, func()) {
	ch := make(chan []byte, 1)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[[stun.TransactionIDSize]byte]stunWaiter)
	}
	s.m[id] = stunWaiter{from: from, ch: ch}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.m, id)
		s.mu.Unlock()
	}
}

// deliver hands an answer to its waiter (once) and reports whether one
// waited for it from that address.
func (s *stunWaiters) deliver(b []byte, from net.Addr) bool {
	if len(b) < 20 {
		return false
	}
	var id [stun.TransactionIDSize]byte
	copy(id[:], b[8:20])
	s.mu.Lock()
	w, ok := s.m[id]
	if ok && sameAddr(w.from, from) {
		delete(s.m, id)
	} else {
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	w.ch <- append([]byte(nil), b...)
	return true
}

func sameAddr(a, b net.Addr) bool {
	pa, oka := addrPortOf(a)
	pb, okb := addrPortOf(b)
	return oka && okb && pa == pb
}
