package udp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
)

// Birthday punching (docs/reachability.md §5.7): when our NAT maps per
// endpoint and the peer's does not, our one socket's probes leave from a
// port nobody can predict, and the peer's router lets in only what answers
// its own flows. So we open many extra sockets, each probing the peer's
// reflexive address (each gets its own random public port and a filter
// hole for the peer), while the peer sprays probes at random ports of our
// public address: one hit lets the two talk, and the hard side dials QUIC
// from the socket that was hit.
const (
	// birthdaySockets is how many extra sockets the endpoint-dependent
	// side opens for one session.
	birthdaySockets = 256
	// sprayProbes bounds the probes the endpoint-independent side sends to
	// guessed ports in one session, at sprayRate per second: with 256
	// holes among 64 512 ports, 1 024 guesses hit one with probability
	// 1 − (1 − 256/64 512)^1024 ≈ 98 %.
	sprayProbes = 1024
	sprayRate   = 300
	// sprayTick is the spray's pacing step (sprayRate × sprayTick probes
	// per step).
	sprayTick = 50 * time.Millisecond
	// sprayPortLow is the lowest port guessed (NATs rarely map below).
	sprayPortLow = 1024
	// birthdayRepliesPerSocket bounds the replies one extra socket sends.
	birthdayRepliesPerSocket = 8
	// birthdayTargets bounds the peer's public addresses a birthday aims
	// at (probed from every extra socket, or sprayed).
	birthdayTargets = 2
	// birthdayBudget is how long the relay stage waits for a birthday that
	// started (the spray's duration and a margin for the QUIC handshake).
	birthdayBudget = sprayProbes*time.Second/sprayRate + time.Second
)

// birthdayResends are when each extra socket probes the peer's reflexive
// addresses (relative to the start): the first opens its mapping, the
// later ones reach the peer once its spray has opened its side.
var birthdayResends = []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second}

// birthdayRole says which part of the birthday method we play with a
// peer: "hard" (we map per endpoint: open extra sockets), "easy" (the peer
// does: spray guesses) or "" (neither: plain punching suffices, or both
// map per endpoint and the relay is the way).
func birthdayRole(ours, theirs domain.NATMapping) string {
	switch {
	case ours == domain.NATEndpointDependent && theirs == domain.NATEndpointIndependent:
		return "hard"
	case ours == domain.NATEndpointIndependent && theirs == domain.NATEndpointDependent:
		return "easy"
	}
	return ""
}

// publicTargets are the peer's public, non-relay candidates.
func publicTargets(cands []candidate) []netip.AddrPort {
	var out []netip.AddrPort
	for _, c := range cands {
		a := netip.AddrPortFrom(c.Addr.Addr().Unmap(), c.Addr.Port())
		if c.Kind != candRelay && a.Port() != 0 && domain.ScopeOf(a.Addr()) == domain.ScopePublic && !contains(out, a) {
			out = append(out, a)
		}
		if len(out) == birthdayTargets {
			break
		}
	}
	return out
}

func contains(as []netip.AddrPort, a netip.AddrPort) bool {
	for _, b := range as {
		if a == b {
			return true
		}
	}
	return false
}

// spray is the endpoint-independent side: probes from the main socket to
// random ports of each of the peer's public addresses, sprayProbes in all
// at sprayRate (one birthday at a time per transport, either side), each nonce remembered so that a reply from the port it hit
// validates like any other (puncher.handle). It returns when done, when
// ctx ends or when the session closes.
func (t *Transport) spray(ctx context.Context, s *punchSession, cands []candidate) {
	if !t.bdayBusy.CompareAndSwap(false, true) {
		t.log.Debug("birthday: another one runs; not spraying", "peer", s.peer.Name().String())
		return
	}
	defer t.bdayBusy.Store(false)
	var ips []netip.Addr
	for _, a := range publicTargets(cands) {
		if !containsAddr(ips, a.Addr()) {
			ips = append(ips, a.Addr())
		}
	}
	if len(ips) == 0 {
		return
	}
	perTick := max(1, sprayRate*int(sprayTick)/int(time.Second))
	tick := time.NewTicker(sprayTick)
	defer tick.Stop()
	me, to := t.me.Identity.PublicKey(), s.peer.PublicKey()
	t.log.Debug("birthday: spraying", "peer", s.peer.Name().String(), "addrs", len(ips), "probes", sprayProbes)
	for sent := 0; sent < sprayProbes; {
		for k := 0; k < perTick && sent < sprayProbes; k++ {
			var r [2]byte
			_, _ = rand.Read(r[:])
			port := sprayPortLow + int(binary.BigEndian.Uint16(r[:]))%(65536-sprayPortLow)
			addr := netip.AddrPortFrom(ips[sent%len(ips)], uint16(port))
			pr := probe{Type: probeReq, Session: s.id, From: me, To: to}
			_, _ = rand.Read(pr.Nonce[:])
			t.punch.mu.Lock()
			s.nonces[pr.Nonce] = addr
			t.punch.mu.Unlock()
			sent++
			_, _ = t.qt.WriteTo(pr.marshal(t.me), net.UDPAddrFromAddrPort(addr))
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, b := range as {
		if a == b {
			return true
		}
	}
	return false
}

// bdaySocket is one extra socket of the hard side.
type bdaySocket struct {
	conn    *net.UDPConn
	done    chan struct{} // its reader returned
	mu      sync.Mutex
	nonces  map[[16]byte]netip.AddrPort // its probes awaiting a reply
	replies int
}

// bdayWin is the socket a validated reply arrived on, and from where.
type bdayWin struct {
	sock *bdaySocket
	addr netip.AddrPort
}

// birthdayDial is the endpoint-dependent side: it opens birthdaySockets
// extra sockets, probes the peer's public candidates from each, and when
// one of them gets a reply to its probe signed by the peer, dials QUIC to
// that address from that socket (on a quic.Transport of its own, closed
// with the connection) and adopts the connection. It returns the
// connection, or an error when ctx ends or the session closes first;
// dialCtx bounds the QUIC dial once a socket won.
func (t *Transport) birthdayDial(ctx, dialCtx context.Context, s *punchSession, cands []candidate) (*pconn, error) {
	targets := publicTargets(cands)
	if len(targets) == 0 {
		return nil, errors.New("birthday: the peer lists no public address")
	}
	if !t.bdayBusy.CompareAndSwap(false, true) {
		return nil, errors.New("birthday: another one runs")
	}
	defer t.bdayBusy.Store(false)
	local := &net.UDPAddr{}
	if la, ok := t.udp.LocalAddr().(*net.UDPAddr); ok && !la.IP.IsUnspecified() {
		local.IP = la.IP
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wins := make(chan bdayWin, 1)
	var socks []*bdaySocket
	for range birthdaySockets {
		c, err := net.ListenUDP("udp", local)
		if err != nil {
			t.log.Debug("birthday: socket", "err", err)
			break
		}
		b := &bdaySocket{conn: c, done: make(chan struct{}), nonces: make(map[[16]byte]netip.AddrPort)}
		socks = append(socks, b)
		go func() {
			defer close(b.done)
			t.birthdayRead(s, b, wins)
		}()
	}
	var winner *bdaySocket
	closed := false
	closeLosers := func() {
		if closed {
			return
		}
		closed = true
		for _, b := range socks {
			if b != winner {
				_ = b.conn.Close()
				<-b.done
			}
		}
	}
	defer closeLosers()
	if len(socks) == 0 {
		return nil, errors.New("birthday: no extra socket")
	}
	t.log.Debug("birthday: probing from extra sockets", "peer", s.peer.Name().String(), "sockets", len(socks), "targets", len(targets))
	begun := time.Now()
	next := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			for _, b := range socks {
				for _, a := range targets {
					t.birthdayProbe(s, b, a)
				}
			}
			next++
			if next < len(birthdayResends) {
				timer.Reset(time.Until(begun.Add(birthdayResends[next])))
			}
		case w := <-wins:
			winner = w.sock
			closeLosers()
			// Stop its reader, then hand the socket to QUIC.
			_ = winner.conn.SetReadDeadline(time.Now())
			<-winner.done
			_ = winner.conn.SetReadDeadline(time.Time{})
			return t.dialFromSocket(dialCtx, winner.conn, w.addr, s.peer)
		case <-ctx.Done():
			return nil, fmt.Errorf("birthday: no hit on %d sockets: %w", len(socks), ctx.Err())
		case <-s.done:
			return nil, errors.New("birthday: the session ended")
		}
	}
}

// birthdayProbe sends one probe of the session from an extra socket.
func (t *Transport) birthdayProbe(s *punchSession, b *bdaySocket, to netip.AddrPort) {
	pr := probe{Type: probeReq, Session: s.id, From: t.me.Identity.PublicKey(), To: s.peer.PublicKey()}
	_, _ = rand.Read(pr.Nonce[:])
	b.mu.Lock()
	b.nonces[pr.Nonce] = to
	b.mu.Unlock()
	_, _ = b.conn.WriteToUDPAddrPort(pr.marshal(t.me), to)
}

// birthdayRead takes the probes that reach an extra socket: a probe of
// the peer's is answered and probed back (its source may be new), a
// reply to one of ours from where that probe went is a win.
func (t *Transport) birthdayRead(s *punchSession, b *bdaySocket, wins chan<- bdayWin) {
	buf := make([]byte, maxPacket)
	me := t.me.Identity.PublicKey()
	for {
		n, from, err := b.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pr, err := parseProbe(buf[:n])
		if err != nil || pr.Session != s.id || !s.peer.SameKey(pr.From) || !bytes.Equal(pr.To, me) {
			continue
		}
		src := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		switch pr.Type {
		case probeReq:
			b.mu.Lock()
			ok := b.replies < birthdayRepliesPerSocket
			b.replies++
			b.mu.Unlock()
			if !ok {
				continue
			}
			t.log.Debug("birthday: probe on an extra socket", "from", src.String(), "local", b.conn.LocalAddr().String())
			reply := probe{Type: probeReply, Session: s.id, From: me, To: s.peer.PublicKey(), Echo: pr.Nonce}
			_, _ = rand.Read(reply.Nonce[:])
			_, _ = b.conn.WriteToUDPAddrPort(reply.marshal(t.me), src)
			t.birthdayProbe(s, b, src)
		case probeReply:
			b.mu.Lock()
			sentTo, ok := b.nonces[pr.Echo]
			b.mu.Unlock()
			if !ok || sentTo != src {
				continue
			}
			select {
			case wins <- bdayWin{b, src}:
			default:
			}
		}
	}
}

// dialFromSocket dials QUIC to addr from an extra socket and adopts the
// connection; the socket's quic.Transport lives as long as it.
func (t *Transport) dialFromSocket(ctx context.Context, c *net.UDPConn, addr netip.AddrPort, peer domain.Identity) (*pconn, error) {
	qt := &quic.Transport{Conn: lossyUDPConn{c, &t.refused}}
	release := func() { _ = qt.Close(); _ = c.Close() }
	conn, err := t.dialOn(ctx, qt, net.UDPAddrFromAddrPort(addr), peer)
	if err != nil {
		release()
		return nil, fmt.Errorf("birthday: dial %s from %s: %w", addr, c.LocalAddr(), err)
	}
	if !t.go_(func() {
		<-conn.Context().Done()
		release()
	}) {
		_ = conn.CloseWithError(connClosed, "closing")
		release()
		return nil, net.ErrClosed
	}
	pc := &pconn{conn: conn, peer: peer, dialledByMe: true, kind: kindOf(net.UDPAddrFromAddrPort(addr), false), qt: qt}
	t.adopt(pc)
	t.log.Debug("birthday: dialled", "peer", peer.Name().String(), "addr", addr.String(), "local", c.LocalAddr().String())
	return pc, nil
}
