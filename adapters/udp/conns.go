package udp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
)

// streamLink is the first byte of a message-link stream; a file stream
// starts with its protocol version (1) instead (docs/file-protocol.md).
const streamLink byte = 0x4C // 'L'

// retireGrace is how long a duplicate connection to a peer (both sides
// dialled at once) may live on after the other one was preferred, and how
// often it is looked at again while streams still run on it.
const retireGrace = 5 * time.Second

// pconn is one verified QUIC connection to a peer, dialled by either side.
type pconn struct {
	conn        *quic.Conn
	peer        domain.Identity
	dialledByMe bool
	kind        domain.PathKind
	born        time.Time
	streams     atomic.Int32 // streams of ours and theirs now open on it
	// qt is the socket the connection runs on when it is not the main one
	// (a birthday-punching socket): stripe connections are dialled from it.
	qt *quic.Transport
	// unstriped: the peer answered a version-3 REQUEST UNSUPPORTED (an
	// older peer): its files go as version 2.
	unstriped atomic.Bool
	// sha256Only: the peer answered a BLAKE3 REQUEST (version 4 or 5)
	// UNSUPPORTED: its files are hashed with SHA-256 (versions 2 and 3).
	sha256Only atomic.Bool
}

func (c *pconn) alive() bool { return c != nil && c.conn.Context().Err() == nil }

// peerEntry holds the connections to one peer: cur carries new streams,
// others finish theirs and are retired. Guarded by Transport.mu, except
// dial, which serialises connecting.
type peerEntry struct {
	cur     *pconn
	others  []*pconn
	arrived chan struct{} // closed (and replaced) whenever cur changes
	dial    chan struct{} // a token: who holds it is connecting
	// upgrading: a loop tries to move the peer off a relay.
	upgrading bool
}

// maxPeerEntries bounds the peer table; beyond it, entries with no
// connection and no connect in progress are forgotten.
const maxPeerEntries = 4096

// pruneLocked forgets idle entries when the table is full (t.mu held).
func (t *Transport) pruneLocked() {
	if len(t.peers) < maxPeerEntries {
		return
	}
	for k, p := range t.peers {
		if p.cur == nil && len(p.others) == 0 && len(p.dial) == 1 && !p.upgrading {
			delete(t.peers, k)
		}
	}
}

func newPeerEntry() *peerEntry {
	p := &peerEntry{arrived: make(chan struct{}), dial: make(chan struct{}, 1)}
	p.dial <- struct{}{}
	return p
}

func (p *peerEntry) all() []*pconn {
	out := append([]*pconn(nil), p.others...)
	if p.cur != nil {
		out = append(out, p.cur)
	}
	return out
}

// entry returns the peer's entry, making it; nil after close.
func (t *Transport) entry(key ed25519.PublicKey) *peerEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	p := t.peers[string(key)]
	if p == nil {
		t.pruneLocked()
		p = newPeerEntry()
		t.peers[string(key)] = p
	}
	return p
}

// current returns the peer's live preferred connection and a channel that
// is closed when it changes.
func (t *Transport) current(key ed25519.PublicKey) (*pconn, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[string(key)]
	if p == nil {
		return nil, nil
	}
	if p.cur.alive() {
		return p.cur, p.arrived
	}
	return nil, p.arrived
}

// pathRank orders kinds: a LAN path beats a direct one beats a relay.
func pathRank(k domain.PathKind) int {
	switch k {
	case domain.PathLAN:
		return 0
	case domain.PathDirect:
		return 1
	}
	return 2
}

// simultaneous is how far apart two connections to one peer may be born
// and still count as both ends dialling at once.
const simultaneous = 3 * time.Second

// preferred reports whether a should carry new streams rather than b. Both
// ends decide alike: the better path; then a connection much newer than
// the other (the peer dialled again: it lost the old one, say by a
// restart, while ours has not timed out yet); then, for two dialled at
// once, the one dialled by the side with the smaller key; then the newer.
func (t *Transport) preferred(a, b *pconn) bool {
	if !b.alive() {
		return true
	}
	if ra, rb := pathRank(a.kind), pathRank(b.kind); ra != rb {
		return ra < rb
	}
	if d := a.born.Sub(b.born); d > simultaneous || d < -simultaneous {
		return d > 0
	}
	da, db := t.diallerKey(a), t.diallerKey(b)
	if c := bytes.Compare(da, db); c != 0 {
		return c < 0
	}
	return true
}

func (t *Transport) diallerKey(c *pconn) []byte {
	if c.dialledByMe {
		return t.me.Identity.PublicKey()
	}
	return c.peer.PublicKey()
}

// adopt makes c one of the peer's connections (the preferred one if it is
// better) and serves the streams the peer opens on it, until it ends. It
// returns false after close (c is then closed).
func (t *Transport) adopt(c *pconn) bool {
	if c.born.IsZero() {
		c.born = time.Now()
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = c.conn.CloseWithError(connClosed, "closing")
		return false
	}
	key := string(c.peer.PublicKey())
	p := t.peers[key]
	if p == nil {
		t.pruneLocked()
		p = newPeerEntry()
		t.peers[key] = p
	}
	var retired *pconn
	if p.cur == nil || t.preferred(c, p.cur) {
		if p.cur.alive() {
			p.others = append(p.others, p.cur)
			retired = p.cur
		}
		p.cur = c
		close(p.arrived)
		p.arrived = make(chan struct{})
	} else {
		p.others = append(p.others, c)
		retired = c
	}
	t.mu.Unlock()
	if retired != nil {
		t.retire(retired)
	}
	t.reach.reached(t, c)
	if !t.go_(func() { t.serveConn(c) }) {
		_ = c.conn.CloseWithError(connClosed, "closing")
		return false
	}
	return true
}

// retire closes a connection that is no longer preferred once no stream
// runs on it.
func (t *Transport) retire(c *pconn) {
	time.AfterFunc(retireGrace, func() {
		if !c.alive() {
			return
		}
		t.mu.Lock()
		p := t.peers[string(c.peer.PublicKey())]
		isCur := p != nil && p.cur == c
		t.mu.Unlock()
		if isCur {
			return
		}
		if c.streams.Load() == 0 {
			_ = c.conn.CloseWithError(connClosed, "duplicate connection")
			return
		}
		t.retire(c)
	})
}

// drop removes a dead connection from its peer's entry.
func (t *Transport) drop(c *pconn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[string(c.peer.PublicKey())]
	if p == nil {
		return
	}
	if p.cur == c {
		p.cur = nil
	}
	for i, o := range p.others {
		if o == c {
			p.others = append(p.others[:i], p.others[i+1:]...)
			break
		}
	}
	if p.cur == nil && len(p.others) > 0 {
		// The best of the others takes over.
		best := 0
		for i := range p.others {
			if t.preferred(p.others[i], p.others[best]) {
				best = i
			}
		}
		p.cur = p.others[best]
		p.others = append(p.others[:best], p.others[best+1:]...)
		close(p.arrived)
		p.arrived = make(chan struct{})
	}
}

// kindOf says what a connection to remote is, as the user sees it.
func kindOf(remote net.Addr, relayed bool) domain.PathKind {
	if relayed {
		return domain.PathRelayed
	}
	ap, ok := addrPortOf(remote)
	if !ok {
		return domain.PathDirect
	}
	switch domain.ScopeOf(ap.Addr()) {
	case domain.ScopeLoopback, domain.ScopePrivate, domain.ScopeLinkLocal:
		return domain.PathLAN
	}
	return domain.PathDirect
}

func addrPortOf(a net.Addr) (netip.AddrPort, bool) {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
	}
	if a == nil {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// acceptLoop takes incoming connections from ln until ctx ends; relayed
// says ln listens on a TURN allocation.
func (t *Transport) acceptLoop(ctx context.Context, ln *quic.Listener, relayed bool) {
	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, quic.ErrServerClosed) {
				t.log.Warn("accepting connections stopped", "err", err)
			}
			return
		}
		select {
		case t.incoming <- struct{}{}:
		default:
			t.log.Warn("refusing connection: too many", "remote", conn.RemoteAddr().String())
			_ = conn.CloseWithError(connTooMany, "too many connections")
			continue
		}
		t.go_(func() {
			defer func() { <-t.incoming }()
			t.admit(ctx, conn, relayed)
		})
	}
}

// admit verifies an incoming connection's identity and makes it the
// peer's, until it ends.
func (t *Transport) admit(ctx context.Context, conn *quic.Conn, relayed bool) {
	from, err := peerFromQUICState(conn.ConnectionState().TLS)
	if err == nil {
		vctx, cancel := context.WithTimeout(ctx, verifyTimeout)
		err = t.verifier.VerifyPeer(vctx, from)
		cancel()
	}
	if err != nil {
		t.log.Warn("refusing connection", "remote", conn.RemoteAddr().String(), "err", err)
		_ = conn.CloseWithError(connPeerRefused, "peer refused")
		return
	}
	if conn.ConnectionState().TLS.NegotiatedProtocol == ALPNStripe {
		// Carries JOIN streams only: never the peer's connection.
		t.serveStripeConn(conn, from)
		return
	}
	release, ok := t.perPeer.acquire(string(from.PublicKey()), t.cfg.MaxConnectionsPerPeer)
	if !ok {
		t.log.Warn("refusing connection: too many from this peer", "peer", from.Name().String(), "remote", conn.RemoteAddr().String(), "limit", t.cfg.MaxConnectionsPerPeer)
		_ = conn.CloseWithError(connTooManyFrom, "too many connections from your identity")
		return
	}
	defer release()
	c := &pconn{conn: conn, peer: from, kind: kindOf(conn.RemoteAddr(), relayed), born: time.Now()}
	t.log.Debug("connection accepted", "peer", from.Name().String(), "remote", conn.RemoteAddr().String(), "path", c.kind)
	if !t.adopt(c) {
		return
	}
	select {
	case <-conn.Context().Done():
	case <-ctx.Done():
	}
}

// serveConn dispatches the streams the peer opens on c until c ends.
func (t *Transport) serveConn(c *pconn) {
	defer t.drop(c)
	stop := context.AfterFunc(t.ctx, func() { _ = c.conn.CloseWithError(connClosed, "shutting down") })
	defer stop()
	for {
		str, err := c.conn.AcceptStream(t.ctx)
		if err != nil {
			return
		}
		c.streams.Add(1)
		t.go_(func() { t.dispatch(c, str) })
	}
}

// dispatch reads a stream's first byte and hands it to the file server or
// the message link.
func (t *Transport) dispatch(c *pconn, str *quic.Stream) {
	handedOver := false
	defer func() {
		if !handedOver {
			c.streams.Add(-1)
		}
	}()
	_ = str.SetReadDeadline(time.Now().Add(t.cfg.StallTimeout))
	var first [1]byte
	if _, err := io.ReadFull(str, first[:]); err != nil {
		str.CancelRead(codeProtocol)
		str.CancelWrite(codeProtocol)
		return
	}
	if first[0] != streamLink {
		t.files.serve(t, c.peer, str, first[0])
		return
	}
	release, ok := t.linkCnt.acquire(string(c.peer.PublicKey()), t.cfg.MaxLinksPerPeer)
	if !ok {
		t.log.Warn("refusing link stream: too many from this peer", "peer", c.peer.Name().String(), "limit", t.cfg.MaxLinksPerPeer)
		str.CancelRead(codeRefused)
		str.CancelWrite(codeRefused)
		return
	}
	_ = str.SetReadDeadline(time.Time{})
	pc := newPathConn(t, c, str, release)
	select {
	case t.links <- pc:
		handedOver = true
	default:
		t.log.Warn("refusing link stream: nobody accepts them fast enough", "peer", c.peer.Name().String())
		release()
		str.CancelRead(codeRefused)
		str.CancelWrite(codeRefused)
	}
}
