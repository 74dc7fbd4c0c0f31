package udp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Errors handed to IncomingFile.Finish when a stream ends early.
var (
	// ErrSenderCancelled: the sender cancelled the stream.
	ErrSenderCancelled = errors.New("the sender cancelled the transfer")
	// ErrShortStream: the sender ended the stream before the last byte.
	ErrShortStream = errors.New("the sender ended the stream early")
)

// verifyTimeout bounds the PeerVerifier's decision on an incoming connection.
const verifyTimeout = 15 * time.Second

// fileServer hands incoming file streams to the receiver Serve was given.
type fileServer struct {
	mu    sync.Mutex
	r     ports.FileReceiver
	ctx   context.Context
	wg    sync.WaitGroup // file streams being served
	slots chan struct{}  // MaxIncomingTransfers
}

// begin returns the receiver and Serve's context, counting one stream,
// or ok false when nobody serves.
func (f *fileServer) begin() (ports.FileReceiver, context.Context, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.r == nil {
		return nil, nil, false
	}
	f.wg.Add(1)
	return f.r, f.ctx, true
}

// Serve hands incoming file streams to r until ctx is done
// (ports.FileTransport). Connections are accepted all the while the
// transport lives (message-link streams ride them too); file streams that
// arrive while nobody serves are answered "busy". When Serve returns, every
// file stream it took has ended and its IncomingFile was finished.
func (t *Transport) Serve(ctx context.Context, r ports.FileReceiver) error {
	if r == nil {
		return errors.New("udp serve: nil receiver")
	}
	if !t.serving.TryLock() {
		return errors.New("udp serve: already serving")
	}
	defer t.serving.Unlock()
	t.files.mu.Lock()
	t.files.r, t.files.ctx = r, ctx
	t.files.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-t.ctx.Done():
	}
	t.files.mu.Lock()
	t.files.r, t.files.ctx = nil, nil
	t.files.mu.Unlock()
	t.files.wg.Wait()
	return nil
}

// Serving reports whether a FileReceiver is being served now (a Serve
// call has taken it and not returned): file streams arriving before are
// answered busy.
func (t *Transport) Serving() bool {
	t.files.mu.Lock()
	defer t.files.mu.Unlock()
	return t.files.r != nil
}

// serve runs one incoming file stream whose first byte was read.
func (f *fileServer) serve(t *Transport, peer domain.Identity, str fileStream, first byte) {
	r, ctx, ok := f.begin()
	if !ok {
		t.refuseBusy(str, first)
		return
	}
	defer f.wg.Done()
	select {
	case f.slots <- struct{}{}:
	default:
		t.refuseBusy(str, first)
		return
	}
	defer func() { <-f.slots }()
	t.serveStream(ctx, peer, str, first, r, t.log.With("peer", peer.Name().String()))
}

// peerCounts counts the incoming connections of each identity key.
type peerCounts struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire takes one of key's limit connection slots, if one is free, and
// returns its release.
func (c *peerCounts) acquire(key string, limit int) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= limit {
		return nil, false
	}
	if c.n == nil {
		c.n = make(map[string]int)
	}
	c.n[key]++
	return sync.OnceFunc(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.n[key]--; c.n[key] <= 0 {
			delete(c.n, key)
		}
	}), true
}

// count is how many of key's slots are taken.
func (c *peerCounts) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// refuseBusy reads the header so the answer is well-formed, then says busy.
func (t *Transport) refuseBusy(str fileStream, first byte) {
	_ = str.SetDeadline(time.Now().Add(t.cfg.StallTimeout))
	hdr := make([]byte, requestSize)
	hdr[0] = first
	if _, err := io.ReadFull(str, hdr[1:]); err != nil {
		str.CancelRead(codeRefused)
		str.CancelWrite(codeRefused)
		return
	}
	_, _ = str.Write([]byte{answerBusy})
	str.CancelRead(codeRefused)
	_ = str.Close()
}

// serveStream runs one incoming file stream from header to final status.
func (t *Transport) serveStream(ctx context.Context, from domain.Identity, str fileStream, first byte, r ports.FileReceiver, log *slog.Logger) {
	abort := func(code quic.StreamErrorCode) {
		str.CancelRead(code)
		str.CancelWrite(code)
	}
	answer := func(code byte) {
		_, _ = str.Write([]byte{code})
		str.CancelRead(codeRefused)
		_ = str.Close()
	}
	if err := str.SetDeadline(time.Now().Add(t.cfg.StallTimeout)); err != nil {
		abort(codeProtocol)
		return
	}
	// Serve's end resets the stream even while it waits for the peer.
	stop := context.AfterFunc(ctx, func() { abort(codeShutdown) })
	defer stop()
	// The version byte first: another version may have another header.
	n := requestSize
	if layout, _, _ := splitVersion(first); layout == protocolStriped {
		n = requestSizeStriped
	}
	hdr := make([]byte, n)
	hdr[0] = first
	if !t.speaks(first) {
		log.Info("file stream of unsupported version", "version", hdr[0])
		answer(answerUnsupported)
		return
	}
	if _, err := io.ReadFull(str, hdr[1:]); err != nil {
		log.Debug("reading file header", "err", err)
		abort(codeProtocol)
		return
	}
	req, err := parseRequest(hdr)
	if err != nil {
		log.Warn("bad file header", "err", err)
		answer(answerInvalid)
		return
	}
	log = log.With("transfer", req.ID.Short(), "file", req.Index)

	// One stream per file: a newer one (the sender came back after a crash
	// while we still wait on the old connection) ends the older first.
	key := activeKey{peer: string(from.PublicKey()), id: req.ID, index: req.Index}
	me := t.active.take(key, str)
	defer t.active.release(key, me)

	f, err := r.Incoming(ctx, from, req.ID, req.Index, streamPath(str), req.alg())
	if err != nil {
		log.Info("file stream refused", "err", err)
		answer(answerRefused)
		return
	}
	if c, ok := f.(ports.CommittedFile); ok && c.Committed() {
		_ = f.Finish(nil)
		answer(answerComplete)
		return
	}
	res := t.receive(ctx, from, str, req, f, log)
	if res.err != nil {
		if ferr := f.Finish(res.err); ferr != nil {
			log.Warn("finishing interrupted file", "err", ferr)
		}
		if res.final >= 0 {
			_, _ = str.Write([]byte{frameFinal, byte(res.final)})
			_ = str.Close()
			str.CancelRead(codeRefused)
		} else {
			abort(res.code)
		}
		log.Info("file stream ended early", "err", res.err)
		return
	}
	status := statusOK
	if ferr := f.Finish(nil); ferr != nil {
		status = statusFailed
		if errors.Is(ferr, ports.ErrIntegrity) {
			status = statusIntegrity
		}
		log.Warn("file not committed", "err", ferr)
	}
	_ = str.SetWriteDeadline(time.Now().Add(t.cfg.StallTimeout))
	_, _ = str.Write([]byte{frameFinal, status})
	_ = str.Close()
	log.Debug("file received", "bytes", req.Size, "status", status)
}

// receiveResult says how a stream ended before Finish: err is what Finish
// gets; final >= 0 is a status to send, otherwise code resets the stream.
type receiveResult struct {
	err   error
	final int
	code  quic.StreamErrorCode
}

func (t *Transport) receive(ctx context.Context, from domain.Identity, str fileStream, req request, f ports.IncomingFile, log *slog.Logger) receiveResult {
	interrupted := func(what string, err error) receiveResult {
		switch {
		case ctx.Err() != nil:
			return receiveResult{err: fmt.Errorf("%s: %w", what, ctx.Err()), final: -1, code: codeShutdown}
		case t.active.superseded(str):
			return receiveResult{err: fmt.Errorf("%s: %w", what, errSuperseded), final: -1, code: codeSuperseded}
		}
		var se *quic.StreamError
		if errors.As(err, &se) && se.Remote && se.ErrorCode == codeCancelled {
			return receiveResult{err: fmt.Errorf("%s: %w", what, ErrSenderCancelled), final: -1, code: codeCancelled}
		}
		if errors.Is(err, errProtocol) {
			return receiveResult{err: fmt.Errorf("%s: %w", what, err), final: -1, code: codeProtocol}
		}
		if isTimeout(err) || errors.Is(err, errStalled) {
			return receiveResult{err: fmt.Errorf("%s: %w", what, errStalled), final: -1, code: codeStalled}
		}
		return receiveResult{err: fmt.Errorf("%s: %w", what, err), final: -1, code: codeCancelled}
	}

	offset := f.Offset()
	if offset < 0 {
		offset = 0
	}
	// Version 3: grant stripes and take their JOIN streams from now on
	// (on stripe connections of the main stream's carrier, stripe.go).
	granted, sb := 0, make([]byte, startSize)
	var joins *joinWait
	if req.Version == protocolStriped {
		granted, sb = t.grantStripesTo(from, req.Stripes, req.Size-offset), make([]byte, startSize+1)
		if granted > 1 {
			select {
			case t.stripedSlots <- struct{}{}:
				defer func() { <-t.stripedSlots }()
			default:
				granted = 1 // enough files are striped at once
			}
		}
		if granted > 1 {
			_, overTCP := str.(*tcpStream)
			key := joinKey{peer: string(from.PublicKey()), id: req.ID, index: req.Index, session: req.Session, tcp: overTCP}
			joins = t.joins.open(key, granted)
			defer t.joins.close(key, joins)
		}
	}
	if _, err := str.Write(marshalReady(offset, f.PrefixHash(), granted)); err != nil {
		return interrupted("write answer", err)
	}
	// The sender hashes the first offset bytes of its source before START
	// (and dials its stripe connections).
	if err := str.SetReadDeadline(time.Now().Add(t.cfg.StallTimeout + hashTime(offset))); err != nil {
		return interrupted("set deadline", err)
	}
	if _, err := io.ReadFull(str, sb); err != nil {
		return interrupted("read start", err)
	}
	decision, start, err := parseStart(sb, offset, req.Size)
	if err != nil {
		return interrupted("read start", err)
	}
	var data deadlineReader = str
	if granted > 0 {
		used := int(sb[startSize])
		if used < 1 || used > granted || (used > 1 && used > unitsOf(req.Size-start)) {
			return interrupted("read start", fmt.Errorf("%w: %d stripes used of %d granted", errProtocol, used, granted))
		}
		if used > 1 {
			strs, err := t.awaitJoins(ctx, str, joins, used)
			if err != nil {
				return interrupted("wait for stripes", err)
			}
			t.stripedIn.Add(1)
			log.Debug("receiving striped", "path", string(streamPath(str)), "stripes", used, "offset", start)
			sr := t.newStripedReader(ctx, strs, start, req.Size)
			defer sr.stop()
			data = sr
			defer func() {
				for _, s := range strs[1:] {
					s.CancelRead(codeCancelled) // a no-op after their FIN was read
				}
			}()
		}
	}
	if decision == startRestart {
		log.Info("part file differs from the source: restarting", "offset", offset)
		if err := f.Restart(); err != nil {
			return receiveResult{err: fmt.Errorf("restart: %w", err), final: int(statusFailed)}
		}
	}

	// pipelineBuffers buffers: while the use-case writes and hashes one, the next ones
	// fills from the stream. Progress reports count written bytes.
	var written atomic.Int64
	written.Store(start)
	free, full := make(chan []byte, pipelineBuffers), make(chan []byte, pipelineBuffers)
	for range pipelineBuffers {
		free <- make([]byte, t.cfg.BufferSize)
	}
	var writeErr error
	failed, writerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(writerDone)
		for b := range full {
			if writeErr != nil {
				continue
			}
			if _, err := f.Write(b); err != nil {
				writeErr = err
				close(failed)
				continue
			}
			written.Add(int64(len(b)))
			free <- b[:cap(b)]
		}
	}()
	// After stopWriter, no Write runs and writeErr may be read.
	stopWriter := sync.OnceFunc(func() { close(full); <-writerDone })
	defer stopWriter()
	writeFailed := func() receiveResult {
		return receiveResult{err: fmt.Errorf("write: %w", writeErr), final: int(statusFailed)}
	}

	remaining := req.Size - start
	last := time.Now()
	// The data reads run without a read deadline (quic-go would arm a timer
	// for every Read that waits); the watch ends a read that waits longer
	// than StallTimeout instead.
	watch := watchStall(data, t.cfg.StallTimeout)
	defer watch.stop()
	for remaining > 0 {
		var b []byte
		select {
		case b = <-free:
		case <-failed:
			stopWriter()
			return writeFailed()
		}
		n, err := fill(data, b[:min(int64(len(b)), remaining)], watch)
		if n > 0 {
			remaining -= int64(n)
			full <- b[:n]
		} else {
			free <- b
		}
		if now := time.Now(); now.Sub(last) >= progressEvery {
			last = now
			// The write deadline set at the start would otherwise end a
			// transfer that takes longer than StallTimeout.
			if err := str.SetWriteDeadline(now.Add(t.cfg.StallTimeout)); err != nil {
				return interrupted("set deadline", err)
			}
			if _, err := str.Write(marshalProgress(written.Load())); err != nil {
				return interrupted("write progress", err)
			}
		}
		if errors.Is(err, io.EOF) {
			return interrupted("read data", fmt.Errorf("%w after %d of %d bytes", ErrShortStream, req.Size-remaining, req.Size))
		}
		if err != nil {
			return interrupted("read data", err)
		}
	}
	// The sender's hash of the whole file, then the end of the stream.
	watch.stop()
	if err := str.SetReadDeadline(time.Now().Add(t.cfg.StallTimeout)); err != nil {
		return interrupted("set deadline", err)
	}
	var sum [trailerSize]byte
	if n, err := fill(str, sum[:], nil); n < trailerSize {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: no file hash after the last byte", ErrShortStream)
		}
		return interrupted("read file hash", err)
	}
	if err := readEOF(str); err != nil {
		return interrupted("read end", err)
	}
	if sr, ok := data.(*stripedReader); ok {
		if err := sr.finish(); err != nil {
			return interrupted("read stripes", err)
		}
	}
	stopWriter()
	if writeErr != nil {
		return writeFailed()
	}
	f.SourceHash(sum)
	return receiveResult{}
}

// readEOF expects the end of the stream and nothing before it.
func readEOF(str fileStream) error {
	var one [1]byte
	for {
		n, err := str.Read(one[:])
		if n > 0 {
			return fmt.Errorf("%w: bytes after the file hash", errProtocol)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// fill reads until b is full, the stream ends or fails, telling w (when
// not nil) of every byte that arrived.
func fill(str deadlineReader, b []byte, w *stallWatch) (int, error) {
	if w != nil {
		w.reading.Store(true)
		defer w.reading.Store(false)
	}
	n := 0
	for n < len(b) {
		k, err := str.Read(b[n:])
		n += k
		if k > 0 && w != nil {
			w.read.Add(1)
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// stallWatch ends the reads of a stream that brings nothing for a whole
// timeout: it looks every quarter of it whether a read brought bytes since
// it looked last, and after a timeout without any while a read waited it
// sets the read deadline in the past, so that the waiting Read fails with a
// timeout error as if it had had a deadline (a deadline on every Read costs
// a timer each time one waits, which is most reads of a fast stream). Time
// spent waiting for our own writer (a slow disk) is not the peer's stall.
type stallWatch struct {
	str     deadlineReader
	timeout time.Duration
	read    atomic.Int64 // reads that brought bytes
	reading atomic.Bool  // fill is reading

	mu      sync.Mutex
	timer   *time.Timer
	seen    int64     // read when it looked last
	quiet   time.Time // since when nothing came
	stopped bool
}

// deadlineReader is what fill and the stall watch need of a stream.
type deadlineReader interface {
	io.Reader
	SetReadDeadline(t time.Time) error
}

func watchStall(str deadlineReader, timeout time.Duration) *stallWatch {
	w := &stallWatch{str: str, timeout: timeout, quiet: time.Now()}
	_ = str.SetReadDeadline(time.Time{})
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(w.period(), w.look)
	return w
}

func (w *stallWatch) period() time.Duration { return max(w.timeout/4, time.Millisecond) }

func (w *stallWatch) look() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	now := time.Now()
	if r := w.read.Load(); r != w.seen || !w.reading.Load() {
		w.seen, w.quiet = r, now
	} else if now.Sub(w.quiet) >= w.timeout {
		_ = w.str.SetReadDeadline(now) // the waiting Read times out
		return
	}
	w.timer.Reset(w.period())
}

// stop ends the watch; once it returns, the watch touches the stream no more.
func (w *stallWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.timer.Stop()
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// activeKey names one file of one transfer from one peer.
type activeKey struct {
	peer  string
	id    domain.TransferID
	index int
}

type activeStream struct {
	str        fileStream
	done       chan struct{}
	superseded bool
}

// activeStreams keeps at most one stream per file.
type activeStreams struct {
	mu sync.Mutex
	m  map[activeKey]*activeStream
}

// take registers str for key, first ending and waiting for an older stream
// of the same file (its IncomingFile is finished before the new one opens).
func (a *activeStreams) take(key activeKey, str fileStream) *activeStream {
	me := &activeStream{str: str, done: make(chan struct{})}
	for {
		a.mu.Lock()
		old := a.m[key]
		if old == nil {
			a.m[key] = me
			a.mu.Unlock()
			return me
		}
		old.superseded = true
		a.mu.Unlock()
		old.str.CancelRead(codeSuperseded)
		old.str.CancelWrite(codeSuperseded)
		<-old.done
	}
}

func (a *activeStreams) release(key activeKey, me *activeStream) {
	a.mu.Lock()
	if a.m[key] == me {
		delete(a.m, key)
	}
	a.mu.Unlock()
	close(me.done)
}

func (a *activeStreams) superseded(str fileStream) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.m {
		if s.str == str {
			return s.superseded
		}
	}
	return false
}

func (a *activeStreams) cancelAll(code quic.StreamErrorCode) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.m {
		s.str.CancelRead(code)
		s.str.CancelWrite(code)
	}
}
