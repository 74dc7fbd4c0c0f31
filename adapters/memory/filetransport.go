package memory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.FileTransport = (*FileTransport)(nil)

// File transport tuning.
const (
	// ChunkSize is how many bytes one Write to the receiver carries.
	ChunkSize = 64 << 10
	// progressEvery is the most often Send reports progress.
	progressEvery = 100 * time.Millisecond
)

// FileTransport is a host's ports.FileTransport. Send dials like Link (the
// same authentication both ways, over to.Endpoints.File), then runs the
// receiver's side of the stream in the caller's goroutine: Incoming, the
// offset and prefix-hash check (Restart when the prefix differs), Write in
// chunks of ChunkSize, and Finish. A fault (partition, disconnect, a Drop
// roll per chunk), the end of the receiver's Serve or ctx breaks the stream:
// Finish gets the error, so the receiver keeps its part file for a resume.
type FileTransport struct{ h *Host }

// NewFileTransport returns h's file transport (for Wire; same as h.Files()).
func NewFileTransport(h *Host) *FileTransport { return h.Files() }

// Endpoints is the host's address.
func (ft *FileTransport) Endpoints() []string { return []string{ft.h.addr} }

// fileInbox is the receiving side of a file transport's Serve.
type fileInbox struct {
	r       ports.FileReceiver
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

func (fi *fileInbox) enter() bool {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	if fi.stopped {
		return false
	}
	fi.wg.Add(1)
	return true
}

func (fi *fileInbox) stop() {
	fi.mu.Lock()
	fi.stopped = true
	fi.mu.Unlock()
	fi.cancel()
}

func (h *Host) fileInbox() *fileInbox {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.files
}

// Serve hands incoming streams to r until ctx is done (then nil) or the host
// closes (net.ErrClosed). Streams in progress are broken and waited for.
func (ft *FileTransport) Serve(ctx context.Context, r ports.FileReceiver) error {
	if r == nil {
		return errors.New("memory file transport: nil receiver")
	}
	h := ft.h
	fctx, cancel := context.WithCancel(ctx)
	fi := &fileInbox{r: r, ctx: fctx, cancel: cancel}
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		cancel()
		return fmt.Errorf("serve files %s: %w", h.addr, net.ErrClosed)
	case h.files != nil:
		h.mu.Unlock()
		cancel()
		return fmt.Errorf("serve files %s: already serving", h.addr)
	}
	h.files, h.filesServed = fi, true
	h.stateChangedLocked()
	h.mu.Unlock()

	<-fctx.Done()
	h.mu.Lock()
	if h.files == fi {
		h.files = nil
		h.stateChangedLocked()
	}
	closed := h.closed
	h.mu.Unlock()
	fi.stop()
	fi.wg.Wait()
	if closed && ctx.Err() == nil {
		return fmt.Errorf("serve files %s: %w", h.addr, net.ErrClosed)
	}
	return nil
}

// Send streams file index of transfer id to the peer; see FileTransport.
func (ft *FileTransport) Send(ctx context.Context, to domain.Peer, id domain.TransferID, index int, src ports.FileSource, progress func(done int64)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h := ft.h
	what := fmt.Sprintf("send file %d of transfer %s to %s", index, id.Short(), to.Name())
	r, err := h.dial(ctx, to.Identity, to.Endpoints.File, true)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fi := r.fileInbox()
	if fi == nil || !fi.enter() {
		return fmt.Errorf("%s: %w", what, domain.ErrPeerOffline)
	}
	st := &stream{h: h, r: r, fi: fi, what: what, parent: ctx}
	st.ctx, st.cancel = context.WithCancel(ctx)
	stopAfter := context.AfterFunc(fi.ctx, st.cancel)
	defer func() {
		stopAfter()
		st.cancel()
	}()
	if err := st.open(ctx, id, index, src); err != nil {
		fi.wg.Done()
		return err
	}
	if st.committed {
		fi.wg.Done()
		_ = st.inc.Finish(nil)
		if progress != nil {
			progress(src.Size())
		}
		return nil
	}
	go st.receive() // owned by the receiver's Serve (fi.wg); Send waits for it below
	return st.send(ctx, src, progress)
}

// stream is one file on its way: the sender's side runs in Send's
// goroutine, the receiver's in its own (as across a real network), joined
// by a bounded channel of chunks, so that a cancelled or broken stream
// reaches the receiver's Finish even while the sender is stuck reading.
type stream struct {
	h, r   *Host
	fi     *fileInbox
	what   string
	parent context.Context // the sender's
	ctx    context.Context // the stream's: ends with the sender's ctx or the receiver's Serve
	cancel context.CancelFunc
	inc    ports.IncomingFile
	off    int64
	hash   *domain.FileHasher // over what the sender read
	// committed: the receiver has the file already; nothing is streamed.
	committed bool

	chunks   chan []byte   // to the receiver; closed by the sender after the last byte
	free     chan []byte   // buffers back to the sender
	abort    chan struct{} // closed by the sender when it gives up; abortErr says why
	abortErr error
	result   chan error   // the receiver's outcome (Finish's error, or why it stopped)
	at       atomic.Int64 // bytes of the file at the receiver
}

// broken says why the stream cannot go on, or nil.
func (st *stream) broken(ctx context.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if st.ctx.Err() != nil {
		return fmt.Errorf("%s: the receiver stopped: %w", st.what, ErrDisconnected)
	}
	if st.h.isClosed() {
		return fmt.Errorf("%s: %w", st.what, net.ErrClosed)
	}
	f := st.h.net.faults(st.h.addr, st.r.addr)
	switch {
	case f.Disconnect:
		return fmt.Errorf("%s: %w", st.what, ErrDisconnected)
	case f.Partition:
		return fmt.Errorf("%s: the link went silent: %w", st.what, ErrDisconnected)
	}
	return nil
}

// open asks the receiver for the file and agrees on where to start.
func (st *stream) open(ctx context.Context, id domain.TransferID, index int, src ports.FileSource) error {
	if d := st.h.net.faults(st.h.addr, st.r.addr).Delay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-st.ctx.Done():
			t.Stop()
		}
	}
	if err := st.broken(ctx); err != nil {
		return err
	}
	inc, err := st.fi.r.Incoming(st.ctx, st.h.me.Identity, id, index, domain.FilePathNone, memoryFileHash)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", st.what, ports.ErrTransferRefused, err)
	}
	st.inc = inc
	if c, ok := inc.(ports.CommittedFile); ok && c.Committed() {
		st.committed = true
		return nil
	}
	size, off := src.Size(), inc.Offset()
	st.hash = domain.NewFileHasher(memoryFileHash)
	if off > 0 && off <= size {
		if _, err := io.Copy(st.hash, io.NewSectionReader(src, 0, off)); err != nil {
			_ = inc.Finish(err)
			return fmt.Errorf("%s: read the first %d bytes: %w", st.what, off, err)
		}
		if st.hash.Sum() != inc.PrefixHash() {
			off, st.hash = 0, domain.NewFileHasher(memoryFileHash)
		}
	} else {
		off = 0
	}
	if off == 0 && inc.Offset() != 0 {
		if err := inc.Restart(); err != nil {
			_ = inc.Finish(err)
			return fmt.Errorf("%s: the receiver could not restart: %w: %v", st.what, ports.ErrTransferRefused, err)
		}
	}
	st.off = off
	st.at.Store(off)
	st.chunks = make(chan []byte, streamBuffers)
	st.free = make(chan []byte, streamBuffers)
	for range streamBuffers {
		st.free <- make([]byte, min(int64(ChunkSize), max(size-off, 1)))
	}
	st.abort = make(chan struct{})
	st.result = make(chan error, 1)
	return nil
}

// memoryFileHash is the chunk hash of every memory stream: the one the
// newest stream versions use (there is no older peer in memory).
const memoryFileHash = domain.FileHashBLAKE3

// streamBuffers is how many chunks may be in flight between the two sides.
const streamBuffers = 4

// receive is the receiver's side: it writes chunks until the sender closes
// the stream (then Finish(nil)) or the stream breaks (then Finish(err)).
func (st *stream) receive() {
	defer st.fi.wg.Done()
	stop := func(cause, ret error) {
		_ = st.inc.Finish(cause)
		st.result <- ret
	}
	changed := st.h.net.watchFaults()
	for {
		select {
		case b, ok := <-st.chunks:
			if !ok {
				if err := st.inc.Finish(nil); err != nil {
					st.result <- fmt.Errorf("%s: %w", st.what, err)
				} else {
					st.result <- nil
				}
				return
			}
			n, err := st.inc.Write(b)
			st.at.Add(int64(n))
			st.free <- b[:cap(b)]
			if err != nil {
				stop(err, fmt.Errorf("%s: the receiver could not write: %w: %v", st.what, ports.ErrTransferRefused, err))
				return
			}
		case <-st.abort:
			stop(st.abortErr, st.abortErr)
			return
		case <-st.ctx.Done():
			err := st.parent.Err() // the sender cancelled
			if err == nil {
				err = fmt.Errorf("%s: the receiver stopped: %w", st.what, ErrDisconnected)
			}
			stop(err, err)
			return
		case <-changed:
			changed = st.h.net.watchFaults()
			if f := st.h.net.faults(st.h.addr, st.r.addr); f.broken() {
				err := fmt.Errorf("%s: %w", st.what, ErrDisconnected)
				stop(err, err)
				return
			}
		}
	}
}

// send is the sender's side: it reads src from the agreed offset and
// passes it on in chunks, then waits for the receiver's outcome.
func (st *stream) send(ctx context.Context, src ports.FileSource, progress func(done int64)) error {
	// fail gives up: the receiver finishes with err (unless it stopped
	// first), and Send returns err.
	fail := func(err error) error {
		st.abortErr = err
		close(st.abort)
		<-st.result
		return err
	}
	size := src.Size()
	done := st.off
	last := time.Now()
	for done < size {
		if err := st.broken(ctx); err != nil {
			return fail(err)
		}
		if st.h.net.roll(st.h.net.faults(st.h.addr, st.r.addr).Drop) {
			return fail(fmt.Errorf("%s: the stream broke: %w", st.what, ErrDisconnected))
		}
		var buf []byte
		select {
		case buf = <-st.free:
		case err := <-st.result:
			return st.outcome(ctx, err)
		}
		n := min(int64(len(buf)), size-done)
		if got, err := src.ReadAt(buf[:n], done); int64(got) < n {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return fail(fmt.Errorf("%s: read at %d: %w", st.what, done, err))
		}
		st.hash.Write(buf[:n])
		select {
		case st.chunks <- buf[:n]:
		case err := <-st.result:
			return st.outcome(ctx, err)
		}
		done += n
		if progress != nil && time.Since(last) >= progressEvery {
			progress(st.at.Load())
			last = time.Now()
		}
	}
	if err := st.broken(ctx); err != nil {
		return fail(err)
	}
	st.inc.SourceHash(st.hash.Sum()) // the trailer; read by Finish after the close
	close(st.chunks)
	err := <-st.result
	if err == nil && progress != nil {
		progress(size)
	}
	return st.outcome(ctx, err)
}

// outcome turns the receiver's result into Send's error: the sender's own
// cancellation wins over what the receiver saw of it.
func (st *stream) outcome(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// NAT: the in-process network has none.
func (ft *FileTransport) NAT() domain.NATMapping { return domain.NATNone }

// Candidates is the host's address, as a host candidate.
func (ft *FileTransport) Candidates() []string { return []string{"host " + ft.h.addr} }

// Attempts: the in-process network dials at once and records nothing.
func (ft *FileTransport) Attempts() []ports.Attempt { return nil }
