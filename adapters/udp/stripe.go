package udp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Striping (stream version 3, docs/file-protocol.md section 11): one large
// file travels on several streams, each on its own QUIC connection to the
// peer, because quic-go handles each connection's packets (AEAD, framing)
// on its own goroutine — streams of one connection share one core. On the
// TCP file path each stripe is a TLS connection of its own (section 11.9,
// tcpfile.go). The data from the start offset is cut into units of one
// hash chunk (4 MiB); unit j travels on stripe j mod n. Stripe 0 is the
// file's stream (REQUEST … FINAL); stripes 1..n-1 are JOIN streams on
// stripe connections (ALPN chatx-file-stripe/1 over QUIC,
// chatx-file-tcp-stripe/1 over TCP). The receiver puts the units back in
// file order before they reach the IncomingFile, so the part file, the
// hashes, the resume rule and the final name work as with one stream.

// ALPNStripe is the application protocol of a stripe connection: it
// carries JOIN streams only and is never a peer's connection for other
// streams.
const ALPNStripe = "chatx-file-stripe/1"

// maxStripes bounds the stripes of one file (the REQUEST's field).
const maxStripes = 8

// maxUsedStripes is the most stripes this implementation asks for or
// grants (Config.Stripes is cut to it): each stripe costs the receiver up
// to one unit of read-ahead plus what QUIC buffers for its connection; 4
// stripes peaked at 83 MiB RSS at the receiver (BENCHMARKS.md).
const maxUsedStripes = 4

// Automatic striping: files of at least defaultStripeMinSize bytes, on at
// most min(defaultStripes, GOMAXPROCS) stripes.
const (
	defaultStripes       = 4
	defaultStripeMinSize = 64 << 20
)

// stripeDialTimeout bounds dialing the stripe connections of one file.
const stripeDialTimeout = 3 * time.Second

// maxStripedIncoming bounds the files received striped at once: each one
// holds up to a unit of read-ahead per stripe; beyond it a file is granted
// one stripe.
const maxStripedIncoming = 2

// joinSize: version(1) | transfer id(16) | file index(4) | session(8) |
// stripe number(1).
const joinSize = 1 + 16 + 4 + 8 + 1

// stripeSession names one striped stream of a file: its JOIN streams carry
// it, so a JOIN of an older attempt never joins a newer one.
type stripeSession [8]byte

func newStripeSession() stripeSession {
	var s stripeSession
	_, _ = rand.Read(s[:])
	return s
}

// autoStripes is the default of Config.Stripes.
func autoStripes() int { return min(defaultStripes, runtime.GOMAXPROCS(0)) }

// unitsOf is how many units (hash chunks) n bytes are.
func unitsOf(n int64) int {
	return int((n + domain.HashChunkSize - 1) / domain.HashChunkSize)
}

// wantStripes is how many stripes we ask for to send size bytes.
func (c Config) wantStripes(size int64) int {
	if size < c.StripeMinSize {
		return 1
	}
	return max(1, min(c.Stripes, unitsOf(size)))
}

// grantStripes is how many stripes we grant a request for the size − offset
// bytes still missing.
func (c Config) grantStripes(asked int, rest int64) int {
	return max(1, min(asked, c.Stripes, unitsOf(rest)))
}

// grantStripesTo is grantStripes for a file from peer, also kept within
// the stripe connections peer may still open (MaxIncomingStreams of an
// identity): one beyond it is refused after its handshake, which the
// sender cannot tell from a taken one, so its file would fail.
func (t *Transport) grantStripesTo(peer domain.Identity, asked int, rest int64) int {
	free := t.cfg.MaxIncomingStreams - t.stripeConns.count(string(peer.PublicKey()))
	return max(1, min(t.cfg.grantStripes(asked, rest), 1+free))
}

// striped is r as a version-3 REQUEST asking for n stripes, under a new
// session.
func (r request) striped(n int) request {
	r.Version, r.Stripes, r.Session = protocolStriped, n, newStripeSession()
	return r
}

func marshalJoin(req request, stripe int) []byte {
	b := make([]byte, joinSize)
	b[0] = protocolStriped
	copy(b[1:17], req.ID[:])
	binary.BigEndian.PutUint32(b[17:21], uint32(req.Index))
	copy(b[21:29], req.Session[:])
	b[29] = byte(stripe)
	return b
}

// joinHeader is a parsed JOIN.
type joinHeader struct {
	id      domain.TransferID
	index   int
	session stripeSession
	stripe  int
}

func parseJoin(b []byte) (joinHeader, error) {
	if len(b) != joinSize || b[0] != protocolStriped {
		return joinHeader{}, fmt.Errorf("%w: bad JOIN header", errProtocol)
	}
	var j joinHeader
	copy(j.id[:], b[1:17])
	j.index = int(binary.BigEndian.Uint32(b[17:21]))
	copy(j.session[:], b[21:29])
	j.stripe = int(b[29])
	if j.index >= domain.MaxTransferFiles || j.stripe < 1 || j.stripe >= maxStripes {
		return joinHeader{}, fmt.Errorf("%w: JOIN of file %d, stripe %d", errProtocol, j.index, j.stripe)
	}
	return j, nil
}

// --- sender ---

// stripeDialer dials up to n stripe connections to the peer of the file's
// stream, in parallel, and opens on each the stream its JOIN rides; those
// that fail are left out (the file then uses fewer stripes). end closes
// them: cleanly once the file's FINAL came (ok), at once otherwise. A nil
// stripeDialer stripes nothing.
type stripeDialer func(ctx context.Context, n int) (strs []fileStream, end func(ok bool))

// dialEach runs dial n times at once, within stripeDialTimeout, and
// returns those that succeeded, in order.
func dialEach[T any](ctx context.Context, t *Transport, peer domain.Identity, n int, dial func(context.Context) (T, error)) []T {
	// The path is known to work: a handshake slower than this is not
	// worth the receiver's wait for START.
	ctx, cancel := context.WithTimeout(ctx, stripeDialTimeout)
	defer cancel()
	got, ok := make([]T, n), make([]bool, n)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			c, err := dial(ctx)
			if err != nil {
				// The main connection proved the key; another key on a
				// stripe is worth the user's attention, a lost stripe not.
				var changed *domain.KeyChangedError
				if errors.As(err, &changed) || errors.Is(err, ErrPeerMismatch) {
					t.log.Warn("stripe connection met another key than the file connection; striping without it", "peer", peer.Name().String(), "err", err)
				} else {
					t.log.Debug("stripe connection failed", "peer", peer.Name().String(), "err", err)
				}
				return
			}
			got[i], ok[i] = c, true
		})
	}
	wg.Wait()
	out := got[:0]
	for i, c := range got {
		if ok[i] {
			out = append(out, c)
		}
	}
	return out
}

// dialStripes dials QUIC stripe connections to the address the peer's
// connection c leads to.
func (t *Transport) dialStripes(c *pconn) stripeDialer {
	return func(ctx context.Context, n int) ([]fileStream, func(bool)) {
		addr, qt := c.conn.RemoteAddr(), t.qt
		if c.qt != nil {
			qt = c.qt // through the same NAT mapping
		}
		conns := dialEach(ctx, t, c.peer, n, func(ctx context.Context) (*quic.Conn, error) {
			return t.dialALPN(ctx, qt, addr, c.peer, ALPNStripe)
		})
		var strs []fileStream
		open := conns[:0]
		for _, conn := range conns {
			s, err := conn.OpenStreamSync(ctx)
			if err != nil {
				t.log.Debug("stripe stream failed", "peer", c.peer.Name().String(), "err", err)
				_ = conn.CloseWithError(connClosed, "no stream")
				continue
			}
			strs, open = append(strs, s), append(open, conn)
		}
		return strs, func(bool) {
			for _, c := range open {
				_ = c.CloseWithError(connClosed, "file sent")
			}
		}
	}
}

// copyStripes sends src[start:size] on main and the JOIN streams joins,
// unit j on stripe j mod (1+len(joins)), each stripe reading and
// hashing its own units. The units' hashes are added to h in file order:
// all of them on success, the whole ones before the first missing one on
// failure (so a resume in this process reads only what lies beyond).
func (t *Transport) copyStripes(ctx context.Context, main fileStream, joins []fileStream, req request, src ports.FileSource, start int64, h *domain.FileHasher) error {
	strs := append([]fileStream{main}, joins...)
	abort := func() {
		for _, s := range strs {
			s.CancelWrite(codeCancelled)
		}
	}
	for i, s := range joins {
		if err := writeAll(s, marshalJoin(req, i+1)); err != nil {
			abort()
			return fmt.Errorf("open stripe %d: %w", i+1, err)
		}
	}
	// The sender's cancellation ends every stripe at once (the main
	// stream's own is sendStream's).
	stop := context.AfterFunc(ctx, func() {
		for _, s := range strs[1:] {
			s.CancelWrite(codeCancelled)
			s.CancelRead(codeCancelled)
		}
	})
	defer stop()
	units := unitsOf(req.Size - start)
	sums := make([][32]byte, units)
	hashed := make([]bool, units)
	errs := make([]error, len(strs))
	var once sync.Once
	var wg sync.WaitGroup
	for s, str := range strs {
		wg.Go(func() {
			err := t.sendStripe(str, src, req.alg(), start, req.Size, s, len(strs), sums, hashed)
			if err == nil && s > 0 {
				err = str.Close()
			}
			if err != nil {
				// A JOIN's error is only a transport error: what the
				// receiver meant comes on the file's stream (stripe 0).
				if s == 0 {
					errs[s] = err
				} else {
					errs[s] = fmt.Errorf("stripe %d: %v", s, err)
				}
				once.Do(abort) // the others would wait for the receiver, which waits for this one
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	for j := range units {
		off := start + int64(j)*domain.HashChunkSize
		n := min(domain.HashChunkSize, req.Size-off)
		if !hashed[j] || (err != nil && n < domain.HashChunkSize) {
			break
		}
		if aerr := h.AddChunkSum(sums[j], n); aerr != nil {
			return errors.Join(err, aerr)
		}
	}
	return err
}

// sendStripe sends the units of stripe s of n, recording each unit's
// chunk hash (alg) in sums (and hashed) as it is read.
func (t *Transport) sendStripe(str fileStream, src ports.FileSource, alg domain.FileHashAlg, start, size int64, s, n int, sums [][32]byte, hashed []bool) error {
	buf := make([]byte, t.cfg.BufferSize)
	ch := alg.NewChunkHash()
	for j := s; j < len(sums); j += n {
		off := start + int64(j)*domain.HashChunkSize
		end := min(off+domain.HashChunkSize, size)
		ch.Reset()
		for off < end {
			k := min(int64(len(buf)), end-off)
			got, err := src.ReadAt(buf[:k], off)
			if int64(got) < k {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("read source at %d: %w", off, err)
			}
			ch.Write(buf[:k])
			if err := str.SetWriteDeadline(time.Now().Add(t.cfg.StallTimeout)); err != nil {
				return err
			}
			if _, err := str.Write(buf[:k]); err != nil {
				return err
			}
			off += k
		}
		ch.Sum(sums[j][:0])
		hashed[j] = true
	}
	return nil
}

// --- receiver ---

// joinKey names the striped stream JOINs attach to. A JOIN rides the
// main stream's carrier: QUIC stripes join a QUIC stream, TCP stripes a
// TCP one.
type joinKey struct {
	peer    string
	id      domain.TransferID
	index   int
	session stripeSession
	tcp     bool
}

// joinWait collects the JOIN streams of one striped file stream.
type joinWait struct {
	slots []chan fileStream // by stripe number; slot 0 unused
	done  chan struct{}     // the file stream ended: JOIN handlers return
}

// stripeJoins matches JOIN streams to the file streams that granted them.
type stripeJoins struct {
	mu sync.Mutex
	m  map[joinKey]*joinWait
}

// open registers a file stream that granted n stripes.
func (s *stripeJoins) open(k joinKey, n int) *joinWait {
	w := &joinWait{slots: make([]chan fileStream, n), done: make(chan struct{})}
	for i := range w.slots {
		w.slots[i] = make(chan fileStream, 1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[joinKey]*joinWait)
	}
	if old := s.m[k]; old != nil {
		s.closeLocked(k, old)
	}
	s.m[k] = w
	return w
}

// join hands str to the file stream it names; false when there is none
// or the stripe is taken.
func (s *stripeJoins) join(k joinKey, stripe int, str fileStream) (*joinWait, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.m[k]
	if w == nil || stripe >= len(w.slots) {
		return nil, false
	}
	select {
	case w.slots[stripe] <- str:
		return w, true
	default:
		return nil, false
	}
}

// close ends w: JOINs that were never taken are refused.
func (s *stripeJoins) close(k joinKey, w *joinWait) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked(k, w)
}

func (s *stripeJoins) closeLocked(k joinKey, w *joinWait) {
	if s.m[k] == w {
		delete(s.m, k)
	}
	select {
	case <-w.done:
		return
	default:
	}
	close(w.done)
	for _, c := range w.slots {
		select {
		case str := <-c:
			str.CancelRead(codeRefused)
			str.CancelWrite(codeRefused)
		default:
		}
	}
}

// serveStripeConn serves the JOIN streams of a verified stripe connection
// until it ends.
func (t *Transport) serveStripeConn(conn *quic.Conn, from domain.Identity) {
	release, ok := t.stripeConns.acquire(string(from.PublicKey()), t.cfg.MaxIncomingStreams)
	if !ok {
		t.log.Warn("refusing stripe connection: too many from this peer", "peer", from.Name().String(), "limit", t.cfg.MaxIncomingStreams)
		_ = conn.CloseWithError(connTooManyFrom, "too many stripe connections from your identity")
		return
	}
	defer release()
	stop := context.AfterFunc(t.ctx, func() { _ = conn.CloseWithError(connClosed, "shutting down") })
	defer stop()
	for {
		str, err := conn.AcceptStream(t.ctx)
		if err != nil {
			return
		}
		if !t.go_(func() { t.serveJoin(from, str) }) {
			str.CancelRead(codeShutdown)
			str.CancelWrite(codeShutdown)
			return
		}
	}
}

// serveJoin reads a JOIN header and hands the stream to its file stream,
// then waits until that one ended (it owns the stream meanwhile).
func (t *Transport) serveJoin(from domain.Identity, str fileStream) {
	_ = str.SetReadDeadline(time.Now().Add(t.cfg.StallTimeout))
	hdr := make([]byte, joinSize)
	if _, err := io.ReadFull(str, hdr); err != nil {
		str.CancelRead(codeProtocol)
		str.CancelWrite(codeProtocol)
		return
	}
	j, err := parseJoin(hdr)
	if err != nil {
		t.log.Warn("bad JOIN stream", "peer", from.Name().String(), "err", err)
		str.CancelRead(codeProtocol)
		str.CancelWrite(codeProtocol)
		return
	}
	_, overTCP := str.(*tcpStream)
	w, ok := t.joins.join(joinKey{peer: string(from.PublicKey()), id: j.id, index: j.index, session: j.session, tcp: overTCP}, j.stripe, str)
	if !ok {
		t.log.Info("JOIN stream of no striped file", "peer", from.Name().String(), "transfer", j.id.Short(), "file", j.index, "stripe", j.stripe)
		str.CancelRead(codeRefused)
		str.CancelWrite(codeRefused)
		return
	}
	// Nothing travels back on a JOIN stream.
	_ = str.Close()
	<-w.done
}

// stripedReader reads the data of a striped file in file order: unit j
// from stripe j mod n. A goroutine per stripe reads ahead up to one unit,
// so each stripe's flow-control window keeps moving while another
// stripe's unit is taken; memory is one unit (plus a buffer) per stripe.
type stripedReader struct {
	t      *Transport
	ctx    context.Context
	strs   []fileStream
	in     []chan []byte // per stripe: filled pieces, never across a unit
	free   []chan []byte // per stripe: empty buffers
	start  int64
	size   int64
	per    int           // buffers per stripe, made as they are needed
	failed chan struct{} // closed with the first error of any stripe
	errMu  sync.Mutex
	err    error
	wg     sync.WaitGroup

	unit    int    // the unit being read
	left    int64  // its bytes not yet read
	cur     []byte // unread part of the piece taken
	curBuf  []byte // that piece's buffer, to give back
	curFrom int    // its stripe
}

// newStripedReader starts the read-ahead of strs (stripe 0 first) for
// src[start:size].
func (t *Transport) newStripedReader(ctx context.Context, strs []fileStream, start, size int64) *stripedReader {
	r := &stripedReader{t: t, ctx: ctx, strs: strs, start: start, size: size, failed: make(chan struct{})}
	r.per = domain.HashChunkSize/t.cfg.BufferSize + 1
	for range strs {
		r.free = append(r.free, make(chan []byte, r.per))
		r.in = append(r.in, make(chan []byte, r.per))
	}
	r.left = r.unitLen(0)
	for s := range strs {
		r.wg.Go(func() { r.readAhead(s) })
	}
	return r
}

func (r *stripedReader) unitLen(j int) int64 {
	off := r.start + int64(j)*domain.HashChunkSize
	return max(0, min(domain.HashChunkSize, r.size-off))
}

func (r *stripedReader) fail(err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if r.err == nil {
		r.err = err
		close(r.failed)
	}
}

func (r *stripedReader) error() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.err
}

// readAhead reads stripe s's units into its buffers; a JOIN stripe then
// expects the end of its stream.
func (r *stripedReader) readAhead(s int) {
	str, n := r.strs[s], len(r.strs)
	units := unitsOf(r.size - r.start)
	eof, made := false, 0
	for j := s; j < units; j += n {
		for left := r.unitLen(j); left > 0; {
			var b []byte
			select {
			case b = <-r.free[s]:
			default:
				if made < r.per {
					b, made = make([]byte, r.t.cfg.BufferSize), made+1
					break
				}
				select {
				case b = <-r.free[s]:
				case <-r.failed:
					return
				}
			}
			want := min(int64(len(b)), left)
			k, err := fill(str, b[:want], nil) // the receive loop's stall watch covers every stripe
			left -= int64(k)
			if k > 0 {
				r.in[s] <- b[:k]
			}
			if errors.Is(err, io.EOF) && left == 0 && j+n >= units && s > 0 {
				eof, err = true, nil // the JOIN's FIN came with its last bytes
			}
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: stripe %d ended before its last byte", ErrShortStream, s)
			}
			if err != nil {
				r.fail(err)
				return
			}
		}
	}
	if s > 0 && !eof {
		if err := readEOF(str); err != nil {
			r.fail(fmt.Errorf("stripe %d: %w", s, err))
		}
	}
}

// Read gives the file's next bytes, at most up to the end of a unit.
func (r *stripedReader) Read(p []byte) (int, error) {
	if len(r.cur) == 0 {
		if r.curBuf != nil {
			r.free[r.curFrom] <- r.curBuf
			r.curBuf = nil
		}
		if r.left == 0 {
			return 0, io.EOF
		}
		s := r.unit % len(r.strs)
		select {
		case b := <-r.in[s]:
			r.cur, r.curBuf, r.curFrom = b, b[:cap(b)], s
		case <-r.failed:
			return 0, r.error()
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
	k := copy(p[:min(int64(len(p)), r.left)], r.cur)
	r.cur = r.cur[k:]
	if r.left -= int64(k); r.left == 0 {
		r.unit++
		r.left = r.unitLen(r.unit)
	}
	return k, nil
}

// SetReadDeadline sets d on every stripe (the receive loop's stall watch
// clears it, then sets it in the past when nothing came for too long:
// that ends every read-ahead, and so the Read waiting for them). Every
// stripe gets d even when one fails: a TCP stripe we aborted ourselves
// (Serve's end, a newer stream) refuses deadlines, and the others would
// wait for their peer forever.
func (r *stripedReader) SetReadDeadline(d time.Time) error {
	var errs []error
	for _, s := range r.strs {
		errs = append(errs, s.SetReadDeadline(d))
	}
	return errors.Join(errs...)
}

// finish waits for the read-ahead to end and returns its error: nil when
// every JOIN stream ended right after its last byte (within the stall
// timeout).
func (r *stripedReader) finish() error {
	_ = r.SetReadDeadline(time.Now().Add(r.t.cfg.StallTimeout))
	r.wg.Wait()
	return r.error()
}

// stop ends the read-ahead (it unblocks reads by their deadline) and waits
// for it.
func (r *stripedReader) stop() {
	r.fail(errors.New("striped read stopped"))
	_ = r.SetReadDeadline(time.Now())
	r.wg.Wait()
}

// awaitJoins waits (within the stall timeout) for the JOIN streams of
// stripes 1..n-1 and returns every stripe's stream, main first.
func (t *Transport) awaitJoins(ctx context.Context, main fileStream, w *joinWait, n int) ([]fileStream, error) {
	strs := []fileStream{main}
	timer := time.NewTimer(t.cfg.StallTimeout)
	defer timer.Stop()
	for s := 1; s < n; s++ {
		select {
		case str := <-w.slots[s]:
			strs = append(strs, str)
		case <-timer.C:
			for _, str := range strs[1:] {
				str.CancelRead(codeStalled)
			}
			return nil, fmt.Errorf("stripe %d did not join: %w", s, errStalled)
		case <-ctx.Done():
			for _, str := range strs[1:] {
				str.CancelRead(codeShutdown)
			}
			return nil, ctx.Err()
		}
	}
	return strs, nil
}
