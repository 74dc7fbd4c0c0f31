package udp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// ALPNTCP is the application protocol of a file stream over TCP + TLS 1.3
// (docs/file-protocol.md, "The TCP file stream"). The stream bytes are the
// same as on a QUIC stream; one TLS connection carries one file (and a
// striped file adds TCP stripe connections, ALPNTCPStripe).
const ALPNTCP = "chatx-file-tcp/1"

// ALPNTCPStripe is the application protocol of a TCP stripe connection
// (docs/file-protocol.md, "Striping over TCP"): one TLS connection to the
// TCP file listener carrying one JOIN stream of a striped file.
const ALPNTCPStripe = "chatx-file-tcp-stripe/1"

// tcpVersion2For is how long TCP files to a peer that answered a
// version-3 REQUEST UNSUPPORTED go as version 2 without asking again.
const tcpVersion2For = 10 * time.Minute

// fileStream is what the file protocol needs of a stream: a QUIC stream
// (*quic.Stream) or one TLS connection over TCP (tcpStream).
type fileStream interface {
	io.Reader
	io.Writer
	// Close ends our direction after the bytes written (QUIC FIN, TLS
	// close_notify).
	Close() error
	CancelRead(code quic.StreamErrorCode)
	CancelWrite(code quic.StreamErrorCode)
	SetDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

var (
	_ fileStream = (*quic.Stream)(nil)
	_ fileStream = (*tcpStream)(nil)
)

// streamPath is the path str rides: TCP for a TLS connection of the TCP
// file listener, else a QUIC stream over UDP.
func streamPath(str fileStream) domain.FilePath {
	if _, ok := str.(*tcpStream); ok {
		return domain.FilePathTCP
	}
	return domain.FilePathUDP
}

// tcpStream is a file stream on one TLS connection. TCP has no stream
// reset with a code: where QUIC resets the stream (CancelWrite), the
// connection is aborted (an RST, SO_LINGER 0); stopping to read alone
// (CancelRead) sends nothing, as the connection ends with the stream.
type tcpStream struct {
	*tls.Conn
	tcp  *net.TCPConn
	once sync.Once
}

func newTCPStream(c *tls.Conn, tcp *net.TCPConn) *tcpStream { return &tcpStream{Conn: c, tcp: tcp} }

// Close sends close_notify: the peer reads the end of the stream.
func (s *tcpStream) Close() error { return s.Conn.CloseWrite() }

// CancelRead does nothing on TCP (see tcpStream).
func (s *tcpStream) CancelRead(quic.StreamErrorCode) {}

// CancelWrite aborts the connection.
func (s *tcpStream) CancelWrite(quic.StreamErrorCode) { s.abort() }

func (s *tcpStream) abort() {
	s.once.Do(func() {
		// The TCP socket itself: tls.Conn.Close would first try to send
		// close_notify, which may wait for a full send buffer.
		_ = s.tcp.SetLinger(0)
		_ = s.tcp.Close()
	})
}

// end closes the connection once the stream is over on both sides: it
// reads what the peer still sends for at most a second (so the last bytes
// we wrote are not lost to an RST caused by unread data), then closes.
func (s *tcpStream) end() {
	_ = s.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, s.Conn)
	s.once.Do(func() { _ = s.Conn.Close() })
}

// listenTCP opens the TCP file listener on the port number of our UDP
// socket (TCP and UDP ports are separate), so a peer finds it at the host
// of its direct TCP link and the port of our file endpoints. Without it
// (the port is taken) files ride QUIC only.
func (t *Transport) listenTCP() {
	if t.cfg.NoTCPFiles {
		return
	}
	ua := t.udp.LocalAddr().(*net.UDPAddr)
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ua.IP, Port: ua.Port, Zone: ua.Zone})
	if err != nil {
		t.log.Info("no TCP file listener: files ride QUIC only", "port", ua.Port, "err", err)
		return
	}
	t.tcpLn = ln
	t.tcpIncoming = make(chan struct{}, t.cfg.MaxConnections)
	t.go_(func() { t.acceptTCP(t.ctx, ln) })
	t.log.Info("tcp file listener", "addr", ln.Addr().String())
}

// TCPFileAddr is where the TCP file listener listens ("" when none).
func (t *Transport) TCPFileAddr() string {
	if t.tcpLn == nil {
		return ""
	}
	return t.tcpLn.Addr().String()
}

func (t *Transport) acceptTCP(ctx context.Context, ln *net.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				t.log.Warn("tcp file accept", "err", err)
			}
			return
		}
		select {
		case t.tcpIncoming <- struct{}{}:
		default:
			t.log.Warn("refusing tcp file connection: too many", "remote", c.RemoteAddr().String())
			_ = c.Close()
			continue
		}
		if !t.go_(func() {
			defer func() { <-t.tcpIncoming }()
			t.serveTCP(ctx, c)
		}) {
			<-t.tcpIncoming
			_ = c.Close()
		}
	}
}

// serveTCP runs one incoming TLS connection: the handshake (mutual, TLS
// 1.3, ALPNTCP or ALPNTCPStripe), the PeerVerifier, then one file stream
// or one JOIN stream.
func (t *Transport) serveTCP(ctx context.Context, c *net.TCPConn) {
	tc := tls.Server(c, serverTLSFor(t.cert, ALPNTCP, ALPNTCPStripe))
	s := newTCPStream(tc, c)
	stop := context.AfterFunc(ctx, s.abort)
	defer stop()
	hctx, cancel := context.WithTimeout(ctx, t.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	var from domain.Identity
	if err == nil {
		from, err = peertlsIdentity(tc.ConnectionState())
	}
	if err == nil {
		vctx, cancel := context.WithTimeout(ctx, verifyTimeout)
		err = t.verifier.VerifyPeer(vctx, from)
		cancel()
	}
	if err != nil {
		t.log.Warn("refusing tcp file connection", "remote", c.RemoteAddr().String(), "err", err)
		s.abort()
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == ALPNTCPStripe {
		t.serveTCPStripe(from, s)
		return
	}
	// One connection per file: a peer may have as many as it may have
	// file streams open on a QUIC connection.
	release, ok := t.tcpPerPeer.acquire(string(from.PublicKey()), t.cfg.MaxIncomingStreams)
	if !ok {
		t.log.Warn("refusing tcp file connection: too many from this peer", "peer", from.Name().String(), "limit", t.cfg.MaxIncomingStreams)
		s.abort()
		return
	}
	defer release()
	_ = s.SetReadDeadline(time.Now().Add(t.cfg.StallTimeout))
	var first [1]byte
	if _, err := io.ReadFull(s, first[:]); err != nil {
		s.abort()
		return
	}
	t.files.serve(t, from, s, first[0])
	s.end()
}

// expiringSet holds keys, each until a time.
type expiringSet struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// set holds k for d.
func (s *expiringSet) set(k string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.until == nil {
		s.until = make(map[string]time.Time)
	}
	now := time.Now()
	for old, u := range s.until {
		if now.After(u) {
			delete(s.until, old)
		}
	}
	s.until[k] = now.Add(d)
}

// has reports whether k is held.
func (s *expiringSet) has(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.until[k]
	return ok && time.Now().Before(u)
}

func peertlsIdentity(cs tls.ConnectionState) (domain.Identity, error) {
	return peerFromStateOf(cs, ALPNTCP, ALPNTCPStripe)
}

// serveTCPStripe serves a verified TCP stripe connection: one JOIN
// stream. It counts with the peer's QUIC stripe connections (at most
// MaxIncomingStreams of an identity), not with its TCP file connections.
func (t *Transport) serveTCPStripe(from domain.Identity, s *tcpStream) {
	release, ok := t.stripeConns.acquire(string(from.PublicKey()), t.cfg.MaxIncomingStreams)
	if !ok {
		t.log.Warn("refusing tcp stripe connection: too many from this peer", "peer", from.Name().String(), "limit", t.cfg.MaxIncomingStreams)
		s.abort()
		return
	}
	defer release()
	t.serveJoin(from, s)
	s.end()
}

// SendTCP streams one file like Send, over a TLS 1.3 connection to the TCP
// file listener of the peer at host (the host its direct TCP message link
// reaches) and the port of its file endpoints. Errors are Send's; a failed
// dial or handshake other than a refused key is a transport error, after
// which the caller may fall back to Send. A file of StripeMinSize bytes
// or more is striped over TCP stripe connections (stream version 3) unless
// the peer refused version 3 over TCP in the last tcpVersion2For.
func (t *Transport) SendTCP(ctx context.Context, to domain.Peer, host string, id domain.TransferID, index int, src ports.FileSource, progress func(done int64)) error {
	if index < 0 || index >= domain.MaxTransferFiles {
		return fmt.Errorf("send file %d of %s over tcp: index out of range", index, id.Short())
	}
	size := src.Size()
	if size < 0 || size > domain.MaxFileSize {
		return fmt.Errorf("send file %d of %s over tcp: %w: size %d", index, id.Short(), domain.ErrTooLarge, size)
	}
	if progress == nil {
		progress = func(int64) {}
	}
	addr, err := tcpFileAddr(host, to.Endpoints.File)
	if err != nil {
		return fmt.Errorf("send file %d of %s over tcp: %w", index, id.Short(), err)
	}
	req := request{Version: protocolVersion, ID: id, Index: index, Size: size}
	var dial stripeDialer
	key := string(to.Identity.PublicKey())
	if n := t.cfg.wantStripes(size); n > 1 && !t.tcpVersion2.has(key) {
		req, dial = req.striped(n), t.dialTCPStripes(to.Identity, addr)
	}
	req.Hash = t.hashFor(t.tcpSHA256.has(key))
	// One TLS connection carries one stream: each attempt is a new one.
	err = t.sendFallingBack(req, dial, func(req request, dial stripeDialer) error {
		s, err := t.dialTCP(ctx, to.Identity, addr, ALPNTCP)
		if err != nil {
			return err
		}
		defer s.end()
		err = t.sendStream(ctx, s, req, src, progress, dial)
		if err != nil {
			s.abort()
		}
		return err
	}, func(req, next request) {
		t.log.Debug("peer does not speak this file protocol over tcp: asking again", "peer", to.Name().String(),
			"version", wireVersion(req.Version, req.alg()), "then", wireVersion(next.Version, next.alg()))
		if next.alg() != req.alg() {
			t.tcpSHA256.set(key, tcpSHA256For)
		}
		if next.Version != req.Version {
			t.tcpVersion2.set(key, tcpVersion2For)
		}
	})
	if err != nil {
		return fmt.Errorf("send file %d of %s over tcp to %s: %w", index, id.Short(), to.Name(), err)
	}
	return nil
}

// dialTCPStripes dials TCP stripe connections to addr, the peer's TCP file
// listener; each is the stream of one JOIN.
func (t *Transport) dialTCPStripes(want domain.Identity, addr string) stripeDialer {
	return func(ctx context.Context, n int) ([]fileStream, func(bool)) {
		conns := dialEach(ctx, t, want, n, func(ctx context.Context) (*tcpStream, error) {
			return t.dialTCP(ctx, want, addr, ALPNTCPStripe)
		})
		strs := make([]fileStream, len(conns))
		for i, c := range conns {
			strs[i] = c
		}
		return strs, func(ok bool) {
			for _, c := range conns {
				if ok {
					c.end() // the receiver ended its side at the JOIN: no wait
				} else {
					c.abort()
				}
			}
		}
	}
}

// tcpFileAddr is host with the port of the first of the peer's file
// endpoints.
func tcpFileAddr(host string, file []string) (string, error) {
	if host == "" {
		return "", errors.New("no host for the tcp file stream")
	}
	for _, ep := range file {
		_, port, err := net.SplitHostPort(ep)
		if err != nil {
			continue
		}
		if p, err := strconv.Atoi(port); err == nil && p > 0 && p < 65536 {
			return net.JoinHostPort(host, port), nil
		}
	}
	return "", errors.New("the peer advertises no file endpoint")
}

// dialTCP connects and runs the TLS handshake (ALPN alpn) that proves
// want's key.
func (t *Transport) dialTCP(ctx context.Context, want domain.Identity, addr, alpn string) (*tcpStream, error) {
	dctx, cancel := context.WithTimeout(ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c := nc.(*net.TCPConn)
	var refused certError
	tc := tls.Client(c, clientTLSFor(t.cert, want, &refused, alpn))
	if err := tc.HandshakeContext(dctx); err != nil {
		_ = c.Close()
		if r := refused.get(); r != nil {
			return nil, r
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return newTCPStream(tc, c), nil
}
