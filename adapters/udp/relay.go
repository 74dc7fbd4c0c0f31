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
// relay address after the signal went out.
const relayWait = 5 * time.Second

// relayState is our TURN allocation, while we hold one, with the second
// quic.Transport that listens on it (never the main socket: the TURN
// client has its own).
type relayState struct {
	mu    sync.Mutex
	alloc relayAllocation
	qt    *quic.Transport
	ln    *quic.Listener
	ap    netip.AddrPort
	done  bool
}

func (r *relayState) addr() (netip.AddrPort, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ap, r.alloc != nil
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
	t.relay.mu.Lock()
	defer t.relay.mu.Unlock()
	if t.relay.done {
		return nil, net.ErrClosed
	}
	if t.relay.alloc != nil {
		return t.relay.alloc, nil
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
	qt := &quic.Transport{Conn: alloc.PacketConn()}
	ln, err := qt.Listen(serverTLS(t.cert), t.qconf)
	if err != nil {
		_ = alloc.Close()
		return nil, fmt.Errorf("quic listen on the relay: %w", err)
	}
	t.relay.alloc, t.relay.qt, t.relay.ln, t.relay.ap = alloc, qt, ln, ap
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
	var permit []net.Addr
	seen := map[netip.Addr]bool{}
	add := func(a netip.Addr) {
		switch domain.ScopeOf(a) {
		case domain.ScopePublic, domain.ScopePrivate, domain.ScopeLoopback:
		default:
			return
		}
		if !seen[a] && len(permit) < maxCandidates {
			seen[a] = true
			permit = append(permit, &net.UDPAddr{IP: a.AsSlice()})
		}
	}
	for _, ep := range to.Endpoints.File {
		if ap, err := netip.ParseAddrPort(ep); err == nil {
			add(ap.Addr().Unmap())
		}
	}
	for _, c := range t.punch.peerCandidates(to.Identity) {
		add(c.Addr.Addr())
	}
	if len(permit) == 0 {
		return errors.New("no address of the peer to permit on the relay")
	}
	if err := alloc.Permit(permit...); err != nil {
		return fmt.Errorf("relay permission: %w", err)
	}
	ap, _ := t.relay.addr()
	var session [16]byte
	_, _ = rand.Read(session[:])
	payload := t.newSignal(sigRelay, session, to.Identity, []candidate{{Kind: candRelay, Addr: ap}})
	if err := t.rdv.Signal(ctx, to.Identity, payload); err != nil {
		return fmt.Errorf("signal: %w", err)
	}
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

// dialRelayed answers a relay signal: dial the peer's relay address from
// our QUIC socket, expecting the peer's key.
func (t *Transport) dialRelayed(peer domain.Identity, cands []candidate) {
	ctx, cancel := context.WithTimeout(t.ctx, relayWait)
	defer cancel()
	for _, c := range cands {
		if c.Kind != candRelay {
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
