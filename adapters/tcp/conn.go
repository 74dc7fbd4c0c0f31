package tcp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// peerConn is one authenticated connection to a peer, with its reader and
// writer goroutines (started by installLocked).
type peerConn struct {
	l          *Link
	peer       domain.Identity
	peerKey    string
	instance   [16]byte // the peer's instance (from its hello)
	dialedByMe bool
	path       domain.Path    // how the connection runs (RTT kept in rtt)
	pathConn   ports.PathConn // set when nc rides a QUIC stream: it knows its path best
	rtt        atomic.Int64   // nanoseconds, from the last pong
	pingSent   atomic.Int64   // unix nanoseconds of the last ping, 0 after its pong
	pingNonce  atomic.Uint64
	nc         net.Conn
	fr         *FrameReader
	queue      chan outFrame // complete frames for the writer
	log        *slog.Logger

	// The writer's buffer, and the lock its writes hold. A frame sent
	// while the link is idle — nothing queued or in the writer's hands
	// (pending counts both), nothing written for idleGap, and the socket
	// far from full (room) — is written by the sender itself, sparing the
	// hand-off to the writer goroutine. A busy link keeps the writer, which
	// flushes whatever is queued in one write.
	wmu       sync.Mutex
	bw        *bufio.Writer
	pending   atomic.Int64
	lastWrite atomic.Int64     // unix nanoseconds of the last flush
	room      func(n int) bool // nil: every frame goes through the writer

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
}

func (l *Link) newConn(peer domain.Identity, nc net.Conn, fr *FrameReader, dialedByMe bool, path domain.Path) *peerConn {
	ctx, cancel := context.WithCancel(l.ctx)
	return &peerConn{
		l: l, peer: peer, peerKey: string(peer.PublicKey()), dialedByMe: dialedByMe, path: path,
		nc: nc, fr: fr, queue: make(chan outFrame, l.cfg.QueueSize),
		bw: bufio.NewWriterSize(nc, 64<<10), room: sendRoom(nc),
		log:    l.log.With("peer", peer.Name().String(), "peer_id", string(peer.PeerID())),
		ctx:    ctx,
		cancel: cancel,
	}
}

// outFrame is a complete frame for the writer and, for an envelope's frame,
// its kind and message ID (for LogEnvelopeStage; never its body).
type outFrame struct {
	b    []byte
	kind ports.EnvelopeKind
	id   domain.MessageID
}

// tlsOverhead is more than TLS adds to a frame of an envelope: a record
// header and tag for each 16 KiB. idleGap is how long a link has written
// nothing before a sender writes its frame itself.
const (
	tlsOverhead = 1024
	idleGap     = 200 * time.Microsecond
)

// enqueue hands a frame to the writer, waiting at most WriteTimeout for
// room — or writes it itself when the writer is idle (see wmu).
func (c *peerConn) enqueue(ctx context.Context, frame outFrame) error {
	if c.ctx.Err() != nil {
		return errLinkClosed
	}
	if written, err := c.writeIdle(frame); written {
		return err
	}
	c.pending.Add(1)
	select {
	case c.queue <- frame:
		return nil
	default:
	}
	t := time.NewTimer(c.l.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case c.queue <- frame:
		if c.ctx.Err() != nil {
			return errLinkClosed
		}
		return nil
	case <-c.ctx.Done():
		c.pending.Add(-1)
		return errLinkClosed
	case <-ctx.Done():
		c.pending.Add(-1)
		return ctx.Err()
	case <-t.C:
		c.pending.Add(-1)
		err := fmt.Errorf("%w: the peer stopped reading (queue full for %s)", domain.ErrPeerOffline, c.l.cfg.WriteTimeout)
		c.close(err)
		return err
	}
}

// writeIdle writes frame at once when the writer is idle and the socket
// has room for it, so the write cannot wait for the peer; it reports
// whether it did. Every frame handed to the writer before is written
// (pending is 0), so frames keep their order. A write that fails closes
// the connection and returns errLinkClosed: Send dials again.
func (c *peerConn) writeIdle(frame outFrame) (bool, error) {
	if c.room == nil || c.pending.Load() != 0 {
		return false, nil
	}
	now := time.Now()
	if now.UnixNano()-c.lastWrite.Load() < int64(idleGap) || !c.wmu.TryLock() {
		return false, nil
	}
	defer c.wmu.Unlock()
	if c.pending.Load() != 0 || !c.room(len(frame.b)) {
		return false, nil
	}
	c.nc.SetWriteDeadline(now.Add(c.l.cfg.WriteTimeout))
	_, err := c.bw.Write(frame.b)
	if err == nil {
		err = c.bw.Flush()
	}
	c.lastWrite.Store(time.Now().UnixNano())
	if err != nil {
		c.close(fmt.Errorf("write: %w", err))
		return true, errLinkClosed
	}
	if frame.kind != 0 && c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.traceEnvelope(stageWritten, frame.kind, frame.id)
	}
	return true, nil
}

// push hands a frame to the writer if its queue has room.
func (c *peerConn) push(frame outFrame) bool {
	c.pending.Add(1)
	select {
	case c.queue <- frame:
		return true
	default:
		c.pending.Add(-1)
		return false
	}
}

// probe sends a ping at once, so that a dead connection fails fast.
func (c *peerConn) probe() {
	ping, _ := AppendFrame(nil, FramePing, make([]byte, 8))
	c.push(outFrame{b: ping})
}

// refuse tells the peer why this connection is not used and closes it. Only
// for connections whose goroutines were not started.
func (c *peerConn) refuse(code byte) {
	goAway, _ := AppendFrame(nil, FrameGoAway, []byte{code})
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.nc.Write(goAway) // best effort: the connection is dropped either way
	c.nc.Close()
	c.cancel()
}

// close ends the connection once, for the reason given, and forgets it.
func (c *peerConn) close(reason error) {
	c.closeOnce.Do(func() {
		c.cancel()
		c.nc.Close()
		c.l.mu.Lock()
		c.l.dropLocked(c)
		c.l.mu.Unlock()
		switch {
		case errors.Is(reason, errLinkClosed), errors.Is(reason, io.EOF), errors.Is(reason, net.ErrClosed),
			errors.Is(reason, errReplaced), errors.Is(reason, errPeerGoAway):
			c.log.Info("link down", "reason", reason)
		default:
			c.log.Warn("link down", "reason", reason)
		}
	})
}

// writeLoop writes queued frames, batching whatever is queued into one
// flush, and pings every HeartbeatInterval. A write that does not finish
// within WriteTimeout closes the connection.
func (c *peerConn) writeLoop() {
	defer c.l.wg.Done()
	bw := c.bw
	tick := time.NewTicker(c.l.cfg.HeartbeatInterval)
	defer tick.Stop()
	var nonce uint64
	var err error
	var traced []outFrame // with debug records on: the envelopes of this flush
	for err == nil {
		select {
		case <-c.ctx.Done():
			c.close(errLinkClosed)
			return
		case f := <-c.queue:
			trace := c.log.Enabled(context.Background(), slog.LevelDebug)
			traced = traced[:0]
			c.wmu.Lock()
			c.nc.SetWriteDeadline(time.Now().Add(c.l.cfg.WriteTimeout))
			var taken int64
			for more := true; more && err == nil; {
				taken++
				if _, err = bw.Write(f.b); trace && f.kind != 0 {
					traced = append(traced, f)
				}
				select {
				case f = <-c.queue:
				default:
					more = false
				}
			}
			if err == nil {
				err = bw.Flush()
			}
			c.lastWrite.Store(time.Now().UnixNano())
			c.pending.Add(-taken) // after the flush: a direct write follows these
			c.wmu.Unlock()
			if err == nil {
				for _, f := range traced {
					c.traceEnvelope(stageWritten, f.kind, f.id)
				}
			}
		case <-tick.C:
			nonce++
			c.pingNonce.Store(nonce)
			c.pingSent.Store(time.Now().UnixNano())
			ping, _ := AppendFrame(nil, FramePing, binary.BigEndian.AppendUint64(nil, nonce))
			c.wmu.Lock()
			c.nc.SetWriteDeadline(time.Now().Add(c.l.cfg.WriteTimeout))
			if _, err = bw.Write(ping); err == nil {
				err = bw.Flush()
			}
			c.wmu.Unlock()
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("the peer stopped reading: write blocked for %s", c.l.cfg.WriteTimeout)
	}
	c.close(fmt.Errorf("write: %w", err))
}

// readLoop reads frames until the connection fails, is silent for
// IdleTimeout, or sends garbage, and hands envelopes to the handler in order.
func (c *peerConn) readLoop() {
	defer c.l.wg.Done()
	s := c.slot()
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.l.cfg.IdleTimeout))
		f, err := c.fr.Next()
		if err != nil {
			switch {
			case c.ctx.Err() != nil:
				c.close(errLinkClosed)
			case errors.Is(err, os.ErrDeadlineExceeded):
				c.close(fmt.Errorf("the link was silent for %s", c.l.cfg.IdleTimeout))
			case errors.Is(err, ErrProtocol):
				c.log.Warn("closing link: the peer sent garbage", "err", err)
				c.close(err)
			default:
				c.close(fmt.Errorf("read: %w", err))
			}
			return
		}
		switch {
		case f.Type == FramePing:
			if len(f.Payload) == 8 {
				pong, _ := AppendFrame(nil, FramePong, f.Payload)
				c.push(outFrame{b: pong}) // a full queue already carries traffic
			}
		case f.Type == FramePong:
			c.pong(f.Payload)
		case f.Type == FrameGoAway:
			code := byte(0)
			if len(f.Payload) == 1 {
				code = f.Payload[0]
			}
			c.close(fmt.Errorf("%w: %s", errPeerGoAway, goAwayText(code)))
			return
		case f.Type == FrameHello:
			c.log.Warn("closing link: the peer sent garbage", "err", "second hello")
			c.close(fmt.Errorf("%w: second hello", ErrProtocol))
			return
		case IsEnvelope(f.Type):
			env, err := DecodeEnvelope(f.Type, f.Payload)
			if err != nil {
				c.log.Warn("closing link: the peer sent garbage", "err", err)
				c.close(err)
				return
			}
			if c.log.Enabled(context.Background(), slog.LevelDebug) {
				c.traceEnvelope(stageRead, env.Kind, env.MessageID)
			}
			if !c.deliver(s, env) {
				c.close(errLinkClosed)
				return
			}
		default:
			c.log.Debug("ignoring frame of unknown type", "frame_type", byte(f.Type), "bytes", len(f.Payload))
		}
	}
}

// LogEnvelopeStage is the message of the debug record the link logs when
// an envelope's frame was flushed to the connection ("stage" "frame
// written") or read from it ("frame read"), with its "kind" and message
// "id" — never its body. A benchmark reads them to time a message's way.
const LogEnvelopeStage = "envelope stage"

const (
	stageWritten = "frame written"
	stageRead    = "frame read"
)

func (c *peerConn) traceEnvelope(stage string, kind ports.EnvelopeKind, id domain.MessageID) {
	c.log.Debug(LogEnvelopeStage, "stage", stage, "kind", kindName(kind), "id", id.String())
}

// pong takes the round-trip time from the answer to our last heartbeat.
func (c *peerConn) pong(payload []byte) {
	if len(payload) != 8 || binary.BigEndian.Uint64(payload) != c.pingNonce.Load() {
		return
	}
	if sent := c.pingSent.Swap(0); sent != 0 {
		c.rtt.Store(time.Now().UnixNano() - sent)
	}
}

// currentPath is the connection's path with its latest round-trip time.
func (c *peerConn) currentPath() domain.Path {
	if c.pathConn != nil {
		if p := c.pathConn.Path(); !p.IsZero() {
			return p
		}
	}
	p := c.path
	if rtt := time.Duration(c.rtt.Load()); rtt > 0 {
		p.RTT = rtt
	}
	return p
}

func (c *peerConn) slot() *slot {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	s := c.l.slots[c.peerKey]
	if s == nil { // never: installLocked put c in its slot
		s = &slot{changed: make(chan struct{})}
	}
	return s
}

// deliver passes env to Serve's handler; false when the connection closed
// while waiting for Serve.
func (c *peerConn) deliver(s *slot, env ports.Envelope) bool {
	h, hctx := c.l.waitHandler(c.ctx.Done())
	if h == nil {
		return false
	}
	s.deliverMu.Lock()
	if c.ctx.Err() != nil { // closed or replaced: a newer link's envelopes may already be delivered
		s.deliverMu.Unlock()
		return false
	}
	err := h.HandleEnvelope(hctx, c.peer, env)
	s.deliverMu.Unlock()
	if err != nil {
		c.log.Warn("envelope dropped by the handler", "kind", kindName(env.Kind), "err", err)
	}
	return true
}
