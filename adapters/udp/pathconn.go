package udp

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// codeLinkClosed resets what is left of a link stream closed by its owner.
const codeLinkClosed quic.StreamErrorCode = 0x20

// pathConn is a message-link stream as a net.Conn (ports.PathConn).
type pathConn struct {
	str   *quic.Stream
	c     *pconn
	t     *Transport
	once  sync.Once
	after func()
}

var _ ports.PathConn = (*pathConn)(nil)

func newPathConn(t *Transport, c *pconn, str *quic.Stream, release func()) *pathConn {
	return &pathConn{str: str, c: c, t: t, after: func() {
		c.streams.Add(-1)
		if release != nil {
			release()
		}
	}}
}

func (p *pathConn) Read(b []byte) (int, error)  { return p.str.Read(b) }
func (p *pathConn) Write(b []byte) (int, error) { return p.str.Write(b) }

// Close ends both directions of the stream (what was written is still
// delivered: FIN, then STOP_SENDING for the read side).
func (p *pathConn) Close() error {
	var err error
	p.once.Do(func() {
		err = p.str.Close()
		p.str.CancelRead(codeLinkClosed)
		p.after()
	})
	return err
}

func (p *pathConn) LocalAddr() net.Addr                { return p.c.conn.LocalAddr() }
func (p *pathConn) RemoteAddr() net.Addr               { return p.c.conn.RemoteAddr() }
func (p *pathConn) SetDeadline(d time.Time) error      { return p.str.SetDeadline(d) }
func (p *pathConn) SetReadDeadline(d time.Time) error  { return p.str.SetReadDeadline(d) }
func (p *pathConn) SetWriteDeadline(d time.Time) error { return p.str.SetWriteDeadline(d) }

// Peer is the identity the QUIC handshake authenticated.
func (p *pathConn) Peer() domain.Identity { return p.c.peer }

// Path says how the stream's connection runs now.
func (p *pathConn) Path() domain.Path { return pathOf(p.c) }

func pathOf(c *pconn) domain.Path {
	return domain.Path{
		Kind:      c.kind,
		Transport: domain.TransportQUIC,
		Remote:    c.conn.RemoteAddr().String(),
		RTT:       c.conn.ConnectionStats().SmoothedRTT,
	}
}

// Path is how the preferred connection to peer runs now (the zero Path
// when there is none) — ports.PathReporter.
func (t *Transport) Path(peer domain.Identity) domain.Path {
	c, _ := t.current(peer.PublicKey())
	if c == nil {
		return domain.Path{}
	}
	return pathOf(c)
}

// OpenStream returns a message-link stream to the peer, connecting as
// needed (ports.PeerStreams).
func (t *Transport) OpenStream(ctx context.Context, to domain.Peer) (ports.PathConn, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := t.connect(ctx, to)
		if err != nil {
			return nil, fmt.Errorf("open link stream to %s: %w", to.Name(), err)
		}
		str, err := c.conn.OpenStreamSync(ctx)
		if err == nil {
			c.streams.Add(1)
			_ = str.SetWriteDeadline(time.Now().Add(t.cfg.StallTimeout))
			if _, err = str.Write([]byte{streamLink}); err == nil {
				_ = str.SetWriteDeadline(time.Time{})
				return newPathConn(t, c, str, nil), nil
			}
			c.streams.Add(-1)
			str.CancelRead(codeLinkClosed)
			str.CancelWrite(codeLinkClosed)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A cached connection may have died since it was last used: once
		// more with a fresh one.
		if reused && attempt == 0 && !c.alive() {
			t.drop(c)
			continue
		}
		return nil, fmt.Errorf("open link stream to %s: %w", to.Name(), err)
	}
}

// AcceptStream returns the next message-link stream a peer opened to us
// (ports.PeerStreams).
func (t *Transport) AcceptStream(ctx context.Context) (ports.PathConn, error) {
	select {
	case pc := <-t.links:
		return pc, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.ctx.Done():
		return nil, net.ErrClosed
	}
}
