package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.MessageLink = (*Link)(nil)

// Link is a host's ports.MessageLink. Send dials the first of
// to.Endpoints.Link that answers (a live, serving host not cut off by a
// fault), and authenticates both ways like mutual TLS: the dialled host must
// hold to.Identity's key (else *domain.KeyChangedError) and its PeerVerifier
// must accept our identity (else ErrLinkRefused). The link is kept and
// reused until a fault, Close or the end of the peer's Serve breaks it.
// Envelopes go through a queue of LinkQueue per link and reach the peer's
// handler in order, one at a time. A Delay fault makes each envelope due
// Delay after its Send (latency, not a slower link). The dialling side does not call its own
// verifier: the caller chose to.Identity.
type Link struct{ h *Host }

// NewLink returns h's message link (for Wire; same as h.Link()).
func NewLink(h *Host) *Link { return h.Link() }

// Endpoints is the host's address.
func (k *Link) Endpoints() []string { return []string{k.h.addr} }

// link is one direction of a connection: from the dialler to the dialled host.
type link struct {
	from   domain.Identity
	fromAt string
	to     *Host
	q      chan queued
	done   chan struct{} // closed when the link breaks
	exited chan struct{} // closed when its delivery goroutine has returned
	once   sync.Once
}

// queued is an envelope on its way, due at the receiver at due (a Delay
// fault delays each envelope without making the link slower).
type queued struct {
	env ports.Envelope
	due time.Time
}

func (l *link) close(error) { l.once.Do(func() { close(l.done) }) }

func (l *link) alive() bool {
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

// inbox is the receiving side of a host's Serve: it owns the delivery
// goroutine of every link dialled to the host.
type inbox struct {
	h       *Host
	handler ports.EnvelopeHandler
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	stopped bool
	links   map[string]*link // the current link from each sender address
	wg      sync.WaitGroup
}

// attach starts delivering l; false when the inbox stopped.
func (in *inbox) attach(l *link) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return false
	}
	prev := in.links[l.fromAt]
	in.links[l.fromAt] = l
	in.wg.Add(1)
	go in.deliver(l, prev)
	return true
}

func (in *inbox) stop() {
	in.mu.Lock()
	in.stopped = true
	links := make([]*link, 0, len(in.links))
	for _, l := range in.links {
		links = append(links, l)
	}
	in.mu.Unlock()
	in.cancel()
	for _, l := range links {
		l.close(ErrDisconnected)
	}
}

// deliver hands l's envelopes to the handler. A new link from a sender
// replaces the old one, and starts only after the old one's goroutine has
// returned, so one peer's envelopes never reach the handler concurrently.
func (in *inbox) deliver(l, prev *link) {
	defer in.wg.Done()
	defer close(l.exited)
	defer l.close(ErrDisconnected) // whatever ended delivery, the sender must see a broken link
	defer func() {
		in.mu.Lock()
		if in.links[l.fromAt] == l {
			delete(in.links, l.fromAt)
		}
		in.mu.Unlock()
	}()
	if prev != nil {
		prev.close(ErrDisconnected)
		<-prev.exited
	}
	for {
		var item queued
		select {
		case <-l.done:
			return
		case <-in.ctx.Done():
			return
		case item = <-l.q:
		}
		if d := time.Until(item.due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			case <-in.ctx.Done():
				t.Stop()
				return
			}
		}
		if !l.alive() {
			return // broken while delayed: the envelope is lost
		}
		if err := in.handler.HandleEnvelope(in.ctx, l.from, item.env); err != nil {
			slog.Warn("memory link: envelope dropped by handler", "peer", l.from.Name().String(), "kind", int(item.env.Kind), "err", err)
		}
	}
}

// Serve delivers envelopes from peers to h until ctx is done (then it
// returns nil) or the host is closed (net.ErrClosed). It waits for the
// handler calls in progress before returning. A host serves one handler at
// a time.
func (k *Link) Serve(ctx context.Context, handler ports.EnvelopeHandler) error {
	if handler == nil {
		return errors.New("memory link: nil handler")
	}
	h := k.h
	ictx, cancel := context.WithCancel(ctx)
	in := &inbox{h: h, handler: handler, ctx: ictx, cancel: cancel, links: make(map[string]*link)}
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		cancel()
		return fmt.Errorf("serve %s: %w", h.addr, net.ErrClosed)
	case h.in != nil:
		h.mu.Unlock()
		cancel()
		return fmt.Errorf("serve %s: already serving", h.addr)
	}
	h.in, h.linkServed = in, true
	h.stateChangedLocked()
	h.mu.Unlock()

	<-ictx.Done() // ctx done, or Close cancelled it through stop
	h.mu.Lock()
	if h.in == in {
		h.in = nil
		h.stateChangedLocked()
	}
	closed := h.closed
	h.mu.Unlock()
	in.stop()
	in.wg.Wait()
	if closed && ctx.Err() == nil {
		return fmt.Errorf("serve %s: %w", h.addr, net.ErrClosed)
	}
	return nil
}

func (h *Host) inbox() *inbox {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.in
}

func envelopeSize(env ports.Envelope) int {
	n := 64 + len(env.Body) + len(env.Reason) + len(env.Manifest.Name)
	for _, f := range env.Manifest.Files {
		n += len(f.Path) + 48
	}
	return n
}

// Send queues env on the link to to, dialling one if needed. nil means the
// envelope is on its way (a Drop fault may still lose it). It waits for room
// in a full queue until ctx is done or, when ctx has no deadline,
// DefaultSendTimeout.
func (k *Link) Send(ctx context.Context, to domain.Peer, env ports.Envelope) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n := envelopeSize(env); n > maxEnvelopeBytes {
		return fmt.Errorf("send to %s: %w: envelope of %d bytes", to.Name(), domain.ErrTooLarge, n)
	}
	env.Manifest.Files = slices.Clone(env.Manifest.Files) // as if serialised
	h := k.h
	l, err := h.linkTo(ctx, to)
	if err != nil {
		return fmt.Errorf("send to %s: %w", to.Name(), err)
	}
	if !l.alive() {
		return fmt.Errorf("send to %s: %w", to.Name(), ErrDisconnected)
	}
	f := h.net.faults(h.addr, l.to.addr)
	if h.net.roll(f.Drop) {
		return nil
	}
	item := queued{env: env}
	if f.Delay > 0 {
		item.due = time.Now().Add(f.Delay)
	}
	var timeout <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		t := time.NewTimer(h.sendTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case l.q <- item:
		return nil
	case <-l.done:
		return fmt.Errorf("send to %s: %w", to.Name(), ErrDisconnected)
	case <-ctx.Done():
		return ctx.Err()
	case <-timeout:
		return fmt.Errorf("send to %s: the peer does not read (queue of %d full for %v): %w", to.Name(), LinkQueue, h.sendTimeout, ErrDisconnected)
	}
}

// linkTo returns a live link to the peer, dialling one if needed.
func (h *Host) linkTo(ctx context.Context, to domain.Peer) (*link, error) {
	key := to.Identity.Fingerprint().String()
	h.dialMu.Lock()
	defer h.dialMu.Unlock()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, net.ErrClosed
	}
	if l, ok := h.out[key]; ok {
		if l.alive() && slices.Contains(to.Endpoints.Link, l.to.addr) {
			h.mu.Unlock()
			return l, nil
		}
		delete(h.out, key)
	}
	h.mu.Unlock()

	r, err := h.dial(ctx, to.Identity, to.Endpoints.Link, false)
	if err != nil {
		return nil, err
	}
	l := &link{from: h.me.Identity, fromAt: h.addr, to: r, q: make(chan queued, LinkQueue), done: make(chan struct{}), exited: make(chan struct{})}
	in := r.inbox()
	if in == nil || !in.attach(l) {
		return nil, domain.ErrPeerOffline
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		l.close(net.ErrClosed)
		return nil, net.ErrClosed
	}
	if old, ok := h.out[key]; ok && old != l {
		old.close(ErrDisconnected) // a concurrent Send dialled too; the newer link wins
	}
	h.out[key] = l
	return l, nil
}

// Path reports a live outgoing link to the peer as a LAN path over memory
// (ports.PathReporter); the zero Path when there is none.
func (k *Link) Path(peer domain.Identity) domain.Path {
	h := k.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if l, ok := h.out[peer.Fingerprint().String()]; ok && l.alive() {
		return domain.Path{Kind: domain.PathLAN, Transport: domain.TransportMemory, Remote: l.to.addr}
	}
	return domain.Path{}
}
