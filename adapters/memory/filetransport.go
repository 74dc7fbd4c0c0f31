package memory

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
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
	defer fi.wg.Done()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(fi.ctx, cancel)()

	// broken says why the stream cannot go on, or nil.
	broken := func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if sctx.Err() != nil {
			return fmt.Errorf("%s: the receiver stopped: %w", what, ErrDisconnected)
		}
		if h.isClosed() {
			return fmt.Errorf("%s: %w", what, net.ErrClosed)
		}
		f := h.net.faults(h.addr, r.addr)
		switch {
		case f.Disconnect:
			return fmt.Errorf("%s: %w", what, ErrDisconnected)
		case f.Partition:
			return fmt.Errorf("%s: the link went silent: %w", what, ErrDisconnected)
		case h.net.roll(f.Drop):
			return fmt.Errorf("%s: the stream broke: %w", what, ErrDisconnected)
		}
		return nil
	}
	if d := h.net.faults(h.addr, r.addr).Delay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-sctx.Done():
			t.Stop()
		}
	}
	if err := broken(); err != nil {
		return err
	}

	inc, err := fi.r.Incoming(sctx, h.me.Identity, id, index)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", what, ports.ErrTransferRefused, err)
	}
	// fail ends the receiver's side with err and returns ret.
	fail := func(err, ret error) error {
		_ = inc.Finish(err)
		return ret
	}

	size := src.Size()
	off := inc.Offset()
	if off > 0 && off <= size {
		sum := sha256.New()
		if _, err := io.Copy(sum, io.NewSectionReader(src, 0, off)); err != nil {
			return fail(err, fmt.Errorf("%s: read the first %d bytes: %w", what, off, err))
		}
		if [32]byte(sum.Sum(nil)) != inc.PrefixHash() {
			off = 0
		}
	} else if off != 0 {
		off = 0
	}
	if off == 0 && inc.Offset() != 0 {
		if err := inc.Restart(); err != nil {
			return fail(err, fmt.Errorf("%s: the receiver could not restart: %w: %v", what, ports.ErrTransferRefused, err))
		}
	}

	buf := make([]byte, min(int64(ChunkSize), max(size-off, 1)))
	done := off
	last := time.Now()
	for done < size {
		if err := broken(); err != nil {
			return fail(err, err)
		}
		n := min(int64(len(buf)), size-done)
		if got, err := src.ReadAt(buf[:n], done); int64(got) < n {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return fail(err, fmt.Errorf("%s: read at %d: %w", what, done, err))
		}
		if _, err := inc.Write(buf[:n]); err != nil {
			return fail(err, fmt.Errorf("%s: the receiver could not write: %w: %v", what, ports.ErrTransferRefused, err))
		}
		done += n
		if progress != nil && time.Since(last) >= progressEvery {
			progress(done)
			last = time.Now()
		}
	}
	if err := broken(); err != nil {
		return fail(err, err)
	}
	if progress != nil {
		progress(done)
	}
	if err := inc.Finish(nil); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
