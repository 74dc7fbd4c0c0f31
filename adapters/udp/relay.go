package udp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
)

// relayWait bounds how long the relay stage waits for the peer to dial our
// relay address after the signal went out (long enough for the peer to
// fail relayDial and offer its own relay instead); relayDial bounds the
// peer's dial of a relay address.
const (
	relayWait = 8 * time.Second
	relayDial = 2 * time.Second
	// relayAnswerWait bounds how long the relay stage waits for the
	// ANSWER to a CONNECT of ours still on its way: it lists the peer's
	// reflexive address, which the directory may not know yet and which
	// our allocation must permit.
	relayAnswerWait = 2 * time.Second
)

// relayState is our TURN allocation, while we hold one, with the second
// quic.Transport that listens on it (never the main socket: the TURN
// client has its own).
type relayState struct {
	making sync.Mutex // held while allocating (network round trips)
	mu     sync.Mutex // guards the fields below
	alloc  relayAllocation
	qt     *quic.Transport
	ln     *quic.Listener
	ap     netip.AddrPort
	done   bool
}

func (r *relayState) addr() (netip.AddrPort, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ap, r.alloc != nil
}

// drop forgets alloc when it is still ours, after it closed itself (lost at
// the server): the next ensureRelay allocates anew instead of handing out
// a dead allocation for the rest of the process's life.
func (r *relayState) drop(alloc relayAllocation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.alloc != alloc || alloc == nil {
		return
	}
	_ = r.ln.Close()
	_ = r.qt.Close()
	_ = r.alloc.Close()
	r.alloc, r.qt, r.ln, r.ap = nil, nil, nil, netip.AddrPort{}
}

func (r *relayState) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	if r.alloc == nil {
		return
	}
	_ = r.ln.Close()
	_ = r.qt.Close()
	_ = r.alloc.Close()
	r.alloc = nil
}

// ensureRelay allocates a relay on the rendezvous' TURN servers once and
// listens for QUIC on it (connections there are relayed).
func (t *Transport) ensureRelay(ctx context.Context) (relayAllocation, error) {
	t.relay.making.Lock()
	defer t.relay.making.Unlock()
	t.relay.mu.Lock()
	done, have := t.relay.done, t.relay.alloc
	t.relay.mu.Unlock()
	if done {
		return nil, net.ErrClosed
	}
	if have != nil {
		return have, nil
	}
	servers, err := t.rdv.Relays(ctx)
	if err != nil {
		return nil, fmt.Errorf("relay servers: %w", err)
	}
	alloc, err := allocateRelay(ctx, servers, t.log)
	if err != nil {
		return nil, err
	}
	ap, ok := addrPortOf(alloc.RelayAddr())
	if !ok {
		_ = alloc.Close()
		return nil, fmt.Errorf("relay address %v", alloc.RelayAddr())
	}
	qt := &quic.Transport{Conn: relayConn{alloc.PacketConn(), &t.refused}}
	ln, err := qt.Listen(quicServerTLS(t.cert), t.qconf)
	if err != nil {
		_ = alloc.Close()
		return nil, fmt.Errorf("quic listen on the relay: %w", err)
	}
	t.relay.mu.Lock()
	if t.relay.done {
		t.relay.mu.Unlock()
		_ = ln.Close()
		_ = qt.Close()
		_ = alloc.Close()
		return nil, net.ErrClosed
	}
	t.relay.alloc, t.relay.qt, t.relay.ln, t.relay.ap = alloc, qt, ln, ap
	t.relay.mu.Unlock()
	t.go_(func() { t.acceptLoop(t.ctx, ln, true) })
	t.log.Info("relay allocated", "relay", ap.String())
	return alloc, nil
}

// relayPeer is the relay stage: allocate (once), permit the peer's
// addresses, signal our relay address and wait for the peer to dial it
// from its QUIC socket.
func (t *Transport) relayPeer(ctx context.Context, to domain.Peer) error {
	alloc, err := t.ensureRelay(ctx)
	if err != nil {
		return err
	}
	if answer := t.punch.pendingAnswer(to.Identity); answer != nil {
		tm := time.NewTimer(relayAnswerWait)
		select {
		case <-answer:
		case <-tm.C:
		case <-ctx.Done():
		}
		tm.Stop()
	}
	var known []netip.Addr
	for _, ep := range to.Endpoints.File {
		if ap, err := netip.ParseAddrPort(ep); err == nil {
			known = append(known, ap.Addr().Unmap())
		}
	}
	for _, c := range t.punch.peerCandidates(to.Identity) {
		known = append(known, c.Addr.Addr())
	}
	if err := t.offerFreshRelay(ctx, alloc, to.Identity, sigRelay, known); err != nil {
		return err
	}
	ap, _ := t.relay.addr()
	ctx, cancel := context.WithTimeout(ctx, relayWait)
	defer cancel()
	for {
		c, arrived := t.current(to.Identity.PublicKey())
		if c != nil {
			return nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return fmt.Errorf("the peer did not dial our relay %s", ap)
		}
	}
}

// offerFreshRelay is offerRelay on alloc; when alloc turns out to be gone
// at the server (it closed itself), it allocates anew, once, and offers
// that.
func (t *Transport) offerFreshRelay(ctx context.Context, alloc relayAllocation, to domain.Identity, typ byte, peerAddrs []netip.Addr) error {
	err := t.offerRelay(ctx, alloc, to, typ, peerAddrs)
	if !errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
		return err
	}
	t.log.Info("our relay allocation is gone; allocating anew", "err", err)
	t.relay.drop(alloc)
	if alloc, err = t.ensureRelay(ctx); err != nil {
		return err
	}
	return t.offerRelay(ctx, alloc, to, typ, peerAddrs)
}

// offerRelay permits the peer's addresses (at most maxCandidates) on our
// allocation and signals our relay address with our other candidates.
func (t *Transport) offerRelay(ctx context.Context, alloc relayAllocation, to domain.Identity, typ byte, peerAddrs []netip.Addr) error {
	// The peer's packets reach the relay from its public (NAT) address:
	// those are permitted in one request. Others (a LAN or loopback setup)
	// one by one, best effort: a server may refuse private peers (coturn's
	// denied-peer-ip), which must not cost the public ones.
	var public, other []net.Addr
	seen := map[netip.Addr]bool{}
	for _, a := range peerAddrs {
		if seen[a] || len(public)+len(other) >= maxCandidates {
			continue
		}
		seen[a] = true
		switch domain.ScopeOf(a) {
		case domain.ScopePublic:
			public = append(public, &net.UDPAddr{IP: a.AsSlice()})
		case domain.ScopePrivate, domain.ScopeLoopback:
			other = append(other, &net.UDPAddr{IP: a.AsSlice()})
		}
	}
	permitted := 0
	var errs []error
	if len(public) > 0 {
		if err := alloc.Permit(public...); err != nil {
			errs = append(errs, err)
		} else {
			permitted += len(public)
		}
	}
	for _, a := range other {
		if err := alloc.Permit(a); err != nil {
			errs = append(errs, err)
		} else {
			permitted++
		}
	}
	if permitted == 0 {
		if len(errs) == 0 {
			return errors.New("no address of the peer to permit on the relay")
		}
		return fmt.Errorf("relay permission: %w", errors.Join(errs...))
	}
	ap, _ := t.relay.addr()
	cands := append([]candidate{{Kind: candRelay, Addr: ap}}, t.ourCandidates()...)
	var session [16]byte
	_, _ = rand.Read(session[:])
	if err := t.rdv.Signal(ctx, to, t.newSignal(typ, session, to, cands)); err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	return nil
}

// dialRelayed answers a relay signal: dial the peer's relay address from
// our QUIC socket, expecting the peer's key. When that fails (our UDP
// cannot reach the relay, say) and the signal was a first offer, offer our
// own relay back: the peer then dials it from its socket.
func (t *Transport) dialRelayed(peer domain.Identity, typ byte, cands []candidate) {
	ctx, cancel := context.WithTimeout(t.ctx, relayDial)
	defer cancel()
	var others []netip.Addr
	for _, c := range cands {
		if c.Kind != candRelay {
			others = append(others, c.Addr.Addr())
			continue
		}
		conn, err := t.dialAddr(ctx, c.Addr, peer)
		if err != nil {
			t.log.Info("dialling the relay a peer offered failed", "peer", peer.Name().String(), "relay", c.Addr.String(), "err", err)
			continue
		}
		t.adopt(&pconn{conn: conn, peer: peer, dialledByMe: true, kind: domain.PathRelayed})
		return
	}
	if typ != sigRelay {
		return
	}
	bctx, bcancel := context.WithTimeout(t.ctx, relayWait)
	defer bcancel()
	alloc, err := t.ensureRelay(bctx)
	if err == nil {
		err = t.offerFreshRelay(bctx, alloc, peer, sigRelayBack, others)
	}
	if err != nil {
		t.log.Info("cannot offer our relay back", "peer", peer.Name().String(), "err", err)
	}
}

// pendingAnswer is the answer channel of a session of ours with peer
// still waiting for its ANSWER, or nil.
func (p *puncher) pendingAnswer(peer domain.Identity) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.sessions {
		if s.initiator && s.peerCands == nil && s.peer.SameKey(peer.PublicKey()) {
			return s.answer
		}
	}
	return nil
}

// peerCandidates are the candidates the peer's latest signals listed.
func (p *puncher) peerCandidates(peer domain.Identity) []candidate {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []candidate
	for _, s := range p.sessions {
		if s.peer.SameKey(peer.PublicKey()) {
			out = append(out, s.peerCands...)
		}
	}
	return out
}

// relayConn is the relayed PacketConn as quic-go sees it. Its datagrams are
// read from the TURN client's own socket, whose buffers are the client's
// business; quic-go asks to raise them and, when it cannot, prints a
// warning with the standard logger straight onto the user's terminal.
// A send the system refuses is a lost datagram (sendloss.go).
type relayConn struct {
	net.PacketConn
	refused *sendRefusals
}

func (c relayConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(b, addr)
	return c.refused.absorb(b, n, err)
}

func (relayConn) SetReadBuffer(int) error  { return nil }
func (relayConn) SetWriteBuffer(int) error { return nil }
