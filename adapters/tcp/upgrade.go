package tcp

import (
	"time"

	"github.com/chatx/chatx/domain"
)

// upgrade tries, every UpgradeInterval while c is the peer's link over a
// QUIC stream, to move the link to TCP — a better path, since it needs
// neither punching nor a relay: it dials the peer's TCP endpoints that we
// may dial and, when one gives a link, installs it in c's place (the rules
// of "one link per pair" decide, identically on both sides). Only the side
// whose new link would win tries: the side that dialled c (rule 2, the
// newer wins) or, when the peer dialled c, the side with the smaller key
// (rule 3). Envelopes in flight on c at the switch are lost at this layer,
// and the outbox resends them; the receiver drops duplicates.
func (l *Link) upgrade(c *peerConn) {
	defer l.wg.Done()
	if !c.dialedByMe && l.myKey > c.peerKey {
		return
	}
	t := time.NewTicker(l.cfg.UpgradeInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		s := l.slots[c.peerKey]
		var peer domain.Peer
		if s != nil && s.conn == c {
			peer = s.peer
		}
		l.mu.Unlock()
		if peer.Identity.IsZero() {
			return // c is no longer the link
		}
		for _, addr := range dialable(peer.Endpoints.Link, l.nets.Get()) {
			if l.upgradeTo(c, s, peer, addr) {
				return
			}
		}
	}
}

// upgradeTo dials addr and installs the link in c's place; true when it did.
func (l *Link) upgradeTo(c *peerConn, s *slot, peer domain.Peer, addr string) bool {
	raw, path, err := l.connectTCP(c.ctx, addr)
	if err != nil {
		return false
	}
	nc, err := l.handshake(c.ctx, peer, raw, addr, path)
	if err != nil {
		l.log.Debug("no better path", "peer", peer.Name().String(), "addr", addr, "err", err)
		return false
	}
	l.mu.Lock()
	installed, code := false, GoAwayShutdown
	// The peer installs nc first and drops c, so c may be gone already.
	if s.conn == c || s.conn == nil {
		installed, code = l.installLocked(s, nc)
	}
	l.mu.Unlock()
	if !installed {
		nc.refuse(code)
		return false
	}
	l.log.Info("link moved to a better path", "peer", peer.Name().String(), "from", c.path.String(), "to", nc.path.String())
	return true
}
