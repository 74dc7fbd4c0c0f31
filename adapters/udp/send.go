package udp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// progressEvery is the least time between two progress calls.
const progressEvery = 100 * time.Millisecond

// Send streams one file on a new stream of the connection to the peer
// (ports.FileTransport). progress reports the bytes the receiver says it has
// written, read from its progress frames, throttled to one call per 100 ms,
// plus one call at the start (the resume offset) and one at the end.
func (t *Transport) Send(ctx context.Context, to domain.Peer, id domain.TransferID, index int, src ports.FileSource, progress func(done int64)) error {
	if index < 0 || index >= domain.MaxTransferFiles {
		return fmt.Errorf("send file %d of %s: index out of range", index, id.Short())
	}
	size := src.Size()
	if size < 0 || size > domain.MaxFileSize {
		return fmt.Errorf("send file %d of %s: %w: size %d", index, id.Short(), domain.ErrTooLarge, size)
	}
	if progress == nil {
		progress = func(int64) {}
	}
	log := t.log.With("peer", to.Name().String(), "transfer", id.Short(), "file", index)
	for attempt := 0; ; attempt++ {
		c, reused, err := t.connect(ctx, to)
		if err != nil {
			return fmt.Errorf("send file %d of %s: %w", index, id.Short(), err)
		}
		c.streams.Add(1)
		err = t.sendOn(ctx, c, request{Version: protocolVersion, ID: id, Index: index, Size: size}, src, progress)
		c.streams.Add(-1)
		// A cached connection may have died since it was last used (the
		// peer restarted): dial once more, but only when nothing of this
		// stream reached the receiver.
		var early *beforeStartError
		if err != nil && reused && attempt == 0 && errors.As(err, &early) && !c.alive() && ctx.Err() == nil {
			log.Debug("cached connection died, redialing", "err", err)
			t.drop(c)
			continue
		}
		if err != nil {
			if !c.alive() {
				t.drop(c)
			}
			return fmt.Errorf("send file %d of %s to %s: %w", index, id.Short(), to.Name(), err)
		}
		// The connection's counters (since it opened) show packet sizes
		// and loss when a transfer costs more than it should.
		st := c.conn.ConnectionStats()
		log.Debug("file sent", "bytes", size, "conn_packets_sent", st.PacketsSent, "conn_bytes_sent", st.BytesSent,
			"conn_packets_lost", st.PacketsLost, "conn_bytes_lost", st.BytesLost)
		return nil
	}
}

// Warm connects to the peer unless a connection is up
// (ports.FileWarmer), so that the first file stream need not wait for the
// QUIC handshake or the hole punching: the app calls it while an offer
// waits for its answer.
func (t *Transport) Warm(ctx context.Context, to domain.Peer) error {
	if _, _, err := t.connect(ctx, to); err != nil {
		return fmt.Errorf("warm the way to %s: %w", to.Name(), err)
	}
	return nil
}

// hashRateFloor is the slowest hashing of a file prefix a peer allows for
// (bytes per second) before it calls the other side stalled.
const hashRateFloor = 50 << 20

// hashTime is how long hashing n bytes may take at hashRateFloor.
func hashTime(n int64) time.Duration {
	return time.Duration(n/hashRateFloor+1) * time.Second
}

// beforeStartError marks a failure before the start decision was sent.
type beforeStartError struct{ err error }

func (e *beforeStartError) Error() string { return e.err.Error() }
func (e *beforeStartError) Unwrap() error { return e.err }

// sendOn sends on a new stream of c: striped (version 3 or 5) when the
// file is large enough, the path is not relayed and the peer did not
// refuse striping before; hashed with BLAKE3 (versions 4 and 5) unless the
// peer refused it before; and again at once, one step down (hashver.go's
// fallBack), when the peer answers UNSUPPORTED.
func (t *Transport) sendOn(ctx context.Context, c *pconn, req request, src ports.FileSource, progress func(int64)) error {
	var dial stripeDialer
	if n := t.cfg.wantStripes(req.Size); n > 1 && c.kind != domain.PathRelayed && !c.unstriped.Load() {
		req, dial = req.striped(n), t.dialStripes(c)
	}
	req.Hash = t.hashFor(c.sha256Only.Load())
	return t.sendFallingBack(req, dial, func(req request, dial stripeDialer) error {
		str, err := c.conn.OpenStreamSync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &beforeStartError{fmt.Errorf("open stream: %w", mapStreamError(err))}
		}
		return t.sendStream(ctx, str, req, src, progress, dial)
	}, func(req, next request) {
		t.log.Debug("peer does not speak this file protocol: asking again", "peer", c.peer.Name().String(),
			"version", wireVersion(req.Version, req.alg()), "then", wireVersion(next.Version, next.alg()))
		if next.alg() != req.alg() {
			c.sha256Only.Store(true)
		}
		if next.Version != req.Version {
			c.unstriped.Store(true)
		}
	})
}

// sendFallingBack runs send(req, dial) and, when the receiver answered
// UNSUPPORTED, calls fellBack and sends again at once one step down
// (hashver.go's fallBack: BLAKE3 to SHA-256, then version 3 to 2; nothing
// of the file was written).
func (t *Transport) sendFallingBack(req request, dial stripeDialer, send func(request, stripeDialer) error, fellBack func(req, next request)) error {
	for {
		err := send(req, dial)
		next, ok := fallBack(req, err)
		if !ok {
			return err
		}
		fellBack(req, next)
		if next.Version != req.Version {
			dial = nil
		}
		req = next
	}
}

// hashFor is the chunk hash we ask a peer for: BLAKE3 unless it refused
// it (sha256Only) or we play an older peer (tests).
func (t *Transport) hashFor(sha256Only bool) domain.FileHashAlg {
	if sha256Only || t.sendSHA256 {
		return domain.FileHashSHA256
	}
	return domain.FileHashBLAKE3
}

// sendStream runs the sender's side of the file protocol on str (a QUIC
// stream or a TCP file stream). A version-3 request stripes the data over
// connections dial makes.
func (t *Transport) sendStream(ctx context.Context, str fileStream, req request, src ports.FileSource, progress func(int64), dial stripeDialer) error {
	// ctx cancels both directions at once, even while we block in src.ReadAt.
	stop := context.AfterFunc(ctx, func() {
		str.CancelWrite(codeCancelled)
		str.CancelRead(codeCancelled)
	})
	defer stop()
	fail := func(code quic.StreamErrorCode) {
		str.CancelWrite(code)
		str.CancelRead(code)
	}
	ctxErr := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return mapStreamError(err)
	}

	// The receiver hashes its part file before it answers: allow for that.
	if err := str.SetDeadline(time.Now().Add(t.cfg.StallTimeout + hashTime(req.Size))); err != nil {
		fail(codeCancelled)
		return fmt.Errorf("set deadline: %w", err)
	}
	if _, err := str.Write(req.marshal()); err != nil {
		fail(codeCancelled)
		return &beforeStartError{fmt.Errorf("write header: %w", ctxErr(err))}
	}
	code, offset, prefix, err := readAnswer(str, req.Size)
	if err != nil {
		fail(codeProtocol)
		return &beforeStartError{fmt.Errorf("read answer: %w", ctxErr(err))}
	}
	granted := 0
	switch code {
	case answerReady:
		if req.Version == protocolStriped {
			var g [1]byte
			if _, err := io.ReadFull(str, g[:]); err != nil {
				fail(codeProtocol)
				return &beforeStartError{fmt.Errorf("read answer: %w", ctxErr(err))}
			}
			if granted = int(g[0]); granted < 1 || granted > req.Stripes {
				fail(codeProtocol)
				return fmt.Errorf("%w: %d stripes granted of %d", errProtocol, granted, req.Stripes)
			}
		}
	case answerComplete:
		// It has the file verified and committed; we did not hear it.
		_ = str.Close()
		str.CancelRead(codeCancelled)
		progress(req.Size)
		return nil
	case answerRefused:
		str.CancelWrite(codeRefused)
		return ports.ErrTransferRefused
	case answerBusy:
		str.CancelWrite(codeRefused)
		return fmt.Errorf("%w: the receiver is busy with too many transfers", ports.ErrTransferRefused)
	case answerUnsupported:
		str.CancelWrite(codeRefused)
		return &unsupportedError{version: wireVersion(req.Version, req.alg())}
	case answerInvalid:
		str.CancelWrite(codeProtocol)
		return fmt.Errorf("%w: the receiver found the header malformed", errProtocol)
	default:
		fail(codeProtocol)
		return fmt.Errorf("%w: answer code %d", errProtocol, code)
	}

	key := sentKey{id: req.ID, index: req.Index, size: req.Size}
	start, decision, hasher := int64(0), startRestart, domain.NewFileHasher(req.alg())
	if offset > 0 && offset <= req.Size {
		h, err := t.sent.prefix(ctx, key, req.alg(), src, offset, t.cfg.BufferSize)
		if err != nil {
			fail(codeCancelled)
			return fmt.Errorf("hash first %d bytes of the source: %w", offset, err)
		}
		if h.Sum() == prefix {
			start, decision, hasher = offset, startResume, h
		}
	} else if offset == 0 {
		decision = startResume
	}
	// Stripes: as many as granted, the units left and the connections
	// we could make allow; START says how many (version 3).
	stripes, extra, sent := 0, []fileStream(nil), false
	if req.Version == protocolStriped {
		stripes = min(granted, max(1, unitsOf(req.Size-start)))
		if stripes > 1 && dial != nil {
			var end func(ok bool)
			extra, end = dial(ctx, stripes-1)
			defer func() { end(sent) }() // after FINAL: their bytes arrived
		}
		stripes = 1 + len(extra)
	}
	if _, err := str.Write(marshalStart(decision, start, stripes)); err != nil {
		fail(codeCancelled)
		return fmt.Errorf("write start: %w", ctxErr(err))
	}
	progress(start)
	// From here the write deadline moves with every write; reports may be
	// far apart while the data flows, so only the final wait is bounded.
	if err := str.SetReadDeadline(time.Time{}); err != nil {
		fail(codeCancelled)
		return fmt.Errorf("set deadline: %w", err)
	}

	reports := make(chan reportResult, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		reports <- readReports(str, start, req.Size, progress)
	}()
	defer wg.Wait()

	// The moment the first data byte leaves (BENCHMARKS.md measures the
	// start of a transfer from it); striped, unit 0 rides the main stream.
	out := &firstWrite{fileStream: str, first: func() {
		t.log.Debug(LogFirstDataByte, "transfer", req.ID.Short(), "file", req.Index,
			"path", string(streamPath(str)), "stripes", max(1, stripes), "offset", start)
	}}
	var werr error
	if len(extra) > 0 {
		t.stripedOut.Add(1)
		werr = t.copyStripes(ctx, out, extra, req, src, start, hasher)
	} else {
		werr = t.copyData(out, src, start, req.Size, hasher)
	}
	if werr == nil {
		sum := hasher.Sum()
		werr = writeAll(str, sum[:])
	}
	if werr == nil {
		werr = str.Close()
	} else {
		t.sent.Keep(key, hasher.State())
	}
	if werr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The receiver may have said why it stopped before it stopped us.
		select {
		case rep := <-reports:
			if rep.err == nil || rep.final {
				return rep.status()
			}
		case <-time.After(2 * time.Second):
		}
		fail(codeCancelled)
		return fmt.Errorf("write data: %w", mapStreamError(werr))
	}
	// Wait for the receiver's verdict, however long its final flush takes,
	// within FinishTimeout.
	if err := str.SetReadDeadline(time.Now().Add(t.cfg.FinishTimeout)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	rep := <-reports
	if rep.err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fail(codeCancelled)
		return fmt.Errorf("read status: %w", rep.err)
	}
	if err := rep.status(); err != nil {
		return err
	}
	sent = true
	progress(req.Size)
	return nil
}

// LogFirstDataByte is the message of the debug record logged as the first
// data byte of a file stream is written (after the answer and START): the
// record's time is when a transfer's bytes start to leave.
const LogFirstDataByte = "first data byte sent"

// firstWrite calls first before the first Write to the stream.
type firstWrite struct {
	fileStream
	first func()
}

func (w *firstWrite) Write(p []byte) (int, error) {
	if w.first != nil {
		w.first()
		w.first = nil
	}
	return w.fileStream.Write(p)
}

// copyData streams src[start:size], hashing what it reads into h. A
// reader goroutine reads and hashes the next buffer while this one is
// written to the stream (pipelineBuffers buffers), so hashing costs no time of its own
// when two cores are free. Every write pushes the stall deadline forward.
func (t *Transport) copyData(str fileStream, src ports.FileSource, start, size int64, h *domain.FileHasher) error {
	type chunk struct {
		b   []byte
		err error
	}
	// full: room for every buffer and an error, so the reader never blocks on it
	free, full := make(chan []byte, pipelineBuffers), make(chan chunk, pipelineBuffers+1)
	for range pipelineBuffers {
		free <- make([]byte, t.cfg.BufferSize)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(full)
		for off := start; off < size; {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n := min(int64(len(buf)), size-off)
			got, err := src.ReadAt(buf[:n], off)
			if int64(got) < n {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				full <- chunk{err: fmt.Errorf("read source at %d: %w", off, err)}
				return
			}
			h.Write(buf[:n])
			full <- chunk{b: buf[:n]}
			off += n
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for c := range full {
		if c.err != nil {
			str.CancelWrite(codeCancelled)
			str.CancelRead(codeCancelled)
			return c.err
		}
		if err := str.SetWriteDeadline(time.Now().Add(t.cfg.StallTimeout)); err != nil {
			return err
		}
		if _, err := str.Write(c.b); err != nil {
			return err
		}
		free <- c.b[:cap(c.b)]
	}
	return nil
}

// reportResult is what the receiver's report frames said.
type reportResult struct {
	final bool
	code  byte
	err   error
}

func (r reportResult) status() error {
	switch {
	case r.err != nil:
		return r.err
	case !r.final:
		return fmt.Errorf("%w: stream ended without a final status", errProtocol)
	case r.code == statusOK:
		return nil
	case r.code == statusIntegrity:
		return ports.ErrIntegrity
	case r.code == statusFailed:
		return fmt.Errorf("%w: the receiver could not store the file", ports.ErrTransferRefused)
	default:
		return fmt.Errorf("%w: final status %d", errProtocol, r.code)
	}
}

// readReports reads progress frames and the final status, then expects the
// receiver to end its side of the stream.
func readReports(str fileStream, start, size int64, progress func(int64)) reportResult {
	var hdr [1]byte
	var num [8]byte
	last := time.Now()
	done := start
	for {
		if _, err := io.ReadFull(str, hdr[:]); err != nil {
			return reportResult{err: mapStreamError(err)}
		}
		switch hdr[0] {
		case frameProgress:
			if _, err := io.ReadFull(str, num[:]); err != nil {
				return reportResult{err: mapStreamError(err)}
			}
			n := int64(binary.BigEndian.Uint64(num[:]))
			if n < done || n > size {
				return reportResult{err: fmt.Errorf("%w: progress %d outside %d..%d", errProtocol, n, done, size)}
			}
			done = n
			if now := time.Now(); now.Sub(last) >= progressEvery {
				last = now
				progress(done)
			}
		case frameFinal:
			if _, err := io.ReadFull(str, hdr[:]); err != nil {
				return reportResult{err: mapStreamError(err)}
			}
			return reportResult{final: true, code: hdr[0]}
		default:
			return reportResult{err: fmt.Errorf("%w: report frame %d", errProtocol, hdr[0])}
		}
	}
}

func writeAll(w io.Writer, b []byte) error {
	_, err := w.Write(b)
	return err
}

// sentKey names one file of one transfer as we send it.
type sentKey struct {
	id    domain.TransferID
	index int
	size  int64
}

// sentStates keeps, for a file whose stream broke, the hash state of what
// was sent at the last chunk boundary: the resume in this process then
// reads only the source beyond it to check the receiver's prefix hash.
type sentStates struct{ domain.FileHashStates[sentKey] }

// prefix is a hasher (alg) over src[0:n]: from the kept state when there
// is one of alg at or below n, reading only the rest.
func (s *sentStates) prefix(ctx context.Context, k sentKey, alg domain.FileHashAlg, src ports.FileSource, n int64, bufSize int) (*domain.FileHasher, error) {
	st, ok := s.Take(k)
	h := domain.NewFileHasher(alg)
	if ok && st.Offset <= n {
		if r, err := domain.ResumeFileHasher(st, alg); err == nil {
			h = r
		}
	}
	buf := make([]byte, bufSize)
	r := io.NewSectionReader(src, h.Written(), n-h.Written())
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k, err := r.Read(buf)
		h.Write(buf[:k])
		if errors.Is(err, io.EOF) {
			return h, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Errors a sender reports for what the receiver did to the stream.
var (
	errReceiverShutdown = errors.New("the receiver shut down (the transfer can resume)")
	errSuperseded       = errors.New("a newer stream took this file over")
	errStalled          = errors.New("the peer stalled")
	errPeerCancelled    = errors.New("the peer cancelled the transfer")
)

// mapStreamError names what the peer meant by resetting or stopping a
// stream; other errors (a lost connection) pass through.
func mapStreamError(err error) error {
	var se *quic.StreamError
	if errors.As(err, &se) && se.Remote {
		switch se.ErrorCode {
		case codeCancelled:
			return fmt.Errorf("%w: %w", ports.ErrTransferRefused, errPeerCancelled)
		case codeRefused:
			return fmt.Errorf("%w: %w", ports.ErrTransferRefused, err)
		case codeProtocol:
			return fmt.Errorf("%w: the peer reported a violation", errProtocol)
		case codeShutdown:
			return errReceiverShutdown
		case codeSuperseded:
			return errSuperseded
		case codeStalled:
			return errStalled
		}
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		switch ae.ErrorCode {
		case connPeerRefused:
			return fmt.Errorf("%w: the peer did not accept our identity", ports.ErrTransferRefused)
		case connTooMany:
			return fmt.Errorf("the peer has too many connections (the transfer can resume): %w", err)
		case connTooManyFrom:
			return fmt.Errorf("the peer has too many connections from us (the transfer can resume): %w", err)
		case connClosed:
			return fmt.Errorf("the peer closed the connection (the transfer can resume): %w", err)
		}
	}
	return err
}
