// Package diskfile is a ports.FileReceiver that writes part files in one
// folder, hashing as it writes, for the transport's tests and benchmark. It
// stands in for the use-case and downloads adapter: it trusts the names it
// is given and must not be used for files from real peers.
package diskfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// ErrCancelled is what Write returns after Cancel.
var ErrCancelled = errors.New("cancelled by the receiver")

// Receiver accepts the files registered with Expect.
type Receiver struct {
	dir string
	// Discard skips writing (hashing only), to measure memory without a
	// disk that big.
	Discard bool

	mu    sync.Mutex
	files map[key]*Expected
}

type key struct {
	id    domain.TransferID
	index int
}

// New receives into dir.
func New(dir string) *Receiver { return &Receiver{dir: dir, files: make(map[key]*Expected)} }

// Expected is one file the receiver waits for, and what happened to it.
type Expected struct {
	Name string
	Hash Sums // under either chunk hash: a stream brings its own

	mu        sync.Mutex
	onWrite   func(size int64)
	sessions  []Session
	cancelled bool
	finished  chan struct{}
}

// Session is one stream's use of the file.
type Session struct {
	Offset    int64              // part size when the stream began
	Hash      domain.FileHashAlg // the stream's chunk hash
	Restarted bool
	Written   int64
	FinishErr error // the error Finish was given
	Result    error // what Finish returned
	Finished  bool
	// FinishTook is how long Finish took (flush, fsync, hash check, rename).
	FinishTook time.Duration
}

// Expect registers a file; the returned value reports on it.
func (r *Receiver) Expect(id domain.TransferID, index int, name string, sum Sums) *Expected {
	e := &Expected{Name: name, Hash: sum, finished: make(chan struct{}, 64)}
	r.mu.Lock()
	r.files[key{id, index}] = e
	r.mu.Unlock()
	return e
}

// OnWrite sets a function called after every write with the part's size
// (it may block to hold the stream).
func (e *Expected) OnWrite(fn func(size int64)) { e.mu.Lock(); e.onWrite = fn; e.mu.Unlock() }

// Cancel makes the current and later writes fail.
func (e *Expected) Cancel() { e.mu.Lock(); e.cancelled = true; e.mu.Unlock() }

// Sessions returns a copy of the sessions so far.
func (e *Expected) Sessions() []Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Session(nil), e.sessions...)
}

// Finished delivers one value per Finish call.
func (e *Expected) Finished() <-chan struct{} { return e.finished }

// Path is where the file lands after a verified Finish.
func (r *Receiver) Path(e *Expected) string { return filepath.Join(r.dir, e.Name) }

// PartPath is the part file.
func (r *Receiver) PartPath(e *Expected) string { return filepath.Join(r.dir, e.Name+".part") }

// Incoming opens (or resumes) the part file.
func (r *Receiver) Incoming(_ context.Context, _ domain.Identity, id domain.TransferID, index int, _ domain.FilePath, alg domain.FileHashAlg) (ports.IncomingFile, error) {
	r.mu.Lock()
	e := r.files[key{id, index}]
	r.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("transfer %s file %d: %w", id.Short(), index, domain.ErrNotFound)
	}
	if !alg.Valid() {
		return nil, fmt.Errorf("transfer %s file %d: file hash %v", id.Short(), index, alg)
	}
	f := &file{r: r, e: e, h: domain.NewFileHasher(alg), want: e.Hash.Of(alg)}
	if !r.Discard {
		var err error
		f.f, err = os.OpenFile(r.PartPath(e), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		// Resume at the last chunk boundary (all of it when it is all
		// there: the expected hash tells the size apart from a torn tail).
		n, err := io.Copy(f.h, f.f)
		if err == nil && f.h.Sum() != f.want {
			var off int64
			off, _ = f.h.Boundary()
			f.h = domain.NewFileHasher(alg)
			if _, err = io.Copy(f.h, io.NewSectionReader(f.f, 0, off)); err == nil {
				err = f.f.Truncate(off)
			}
			n = off
		}
		if err == nil {
			_, err = f.f.Seek(n, io.SeekStart)
		}
		if err != nil {
			_ = f.f.Close()
			return nil, err
		}
		f.size, f.from = n, n
	}
	f.prefix = f.h.Sum()
	e.mu.Lock()
	f.session = len(e.sessions)
	e.sessions = append(e.sessions, Session{Offset: f.size, Hash: alg})
	e.mu.Unlock()
	return f, nil
}

type file struct {
	r       *Receiver
	e       *Expected
	f       *os.File
	h       *domain.FileHasher
	want    [32]byte // the whole file's hash under h's algorithm
	size    int64
	prefix  [32]byte
	source  *[32]byte
	session int
	// from is where the bytes not yet handed to write-back begin; prevOff
	// and prevN the chunk started last; noWriteback is set once the system
	// refused it.
	from, prevOff, prevN int64
	noWriteback          bool
}

// writebackChunk: every 8 MiB written, the receiver asks the system to start
// writing them to disk and settles the chunk before (waits for it and drops
// it from the page cache), as adapters/files does, so Finish's fsync has
// little left to do and the page cache holds a few chunks, not the file.
const writebackChunk = 8 << 20

func (f *file) Offset() int64        { return f.size }
func (f *file) PrefixHash() [32]byte { return f.prefix }

func (f *file) SourceHash(sum [32]byte) { f.source = &sum }

func (f *file) Restart() error {
	f.h = domain.NewFileHasher(f.h.Alg())
	f.size, f.from, f.prevOff, f.prevN = 0, 0, 0, 0
	f.update(func(s *Session) { s.Restarted = true })
	if f.f == nil {
		return nil
	}
	if err := f.f.Truncate(0); err != nil {
		return err
	}
	_, err := f.f.Seek(0, io.SeekStart)
	return err
}

func (f *file) Write(p []byte) (int, error) {
	f.e.mu.Lock()
	cancelled, onWrite := f.e.cancelled, f.e.onWrite
	f.e.mu.Unlock()
	if cancelled {
		return 0, ErrCancelled
	}
	if f.f != nil {
		if _, err := f.f.Write(p); err != nil {
			return 0, err
		}
	}
	f.h.Write(p)
	f.size += int64(len(p))
	if f.f != nil && !f.noWriteback && f.size-f.from >= writebackChunk {
		// Only a head start: Finish's fsync decides, so errors just switch
		// it off.
		if StartWriteback(f.f, f.from, f.size-f.from) != nil ||
			(f.prevN > 0 && SettleWriteback(f.f, f.prevOff, f.prevN) != nil) {
			f.noWriteback = true
		}
		f.prevOff, f.prevN, f.from = f.from, f.size-f.from, f.size
	}
	f.update(func(s *Session) { s.Written += int64(len(p)) })
	if onWrite != nil {
		onWrite(f.size)
	}
	return len(p), nil
}

func (f *file) Finish(ferr error) (err error) {
	began := time.Now()
	defer func() {
		took := time.Since(began)
		f.update(func(s *Session) { s.FinishErr, s.Result, s.Finished, s.FinishTook = ferr, err, true, took })
		f.e.finished <- struct{}{}
	}()
	var closeErr error
	if f.f != nil {
		if ferr == nil {
			closeErr = f.f.Sync()
		}
		if cerr := f.f.Close(); closeErr == nil {
			closeErr = cerr
		}
	}
	if ferr != nil {
		return nil // the part stays for a resume
	}
	if closeErr != nil {
		return closeErr
	}
	if sum := f.h.Sum(); sum != f.want || f.source == nil || *f.source != sum {
		return ports.ErrIntegrity
	}
	if f.f == nil {
		return nil
	}
	return os.Rename(f.r.PartPath(f.e), f.r.Path(f.e))
}

func (f *file) update(fn func(*Session)) {
	f.e.mu.Lock()
	fn(&f.e.sessions[f.session])
	f.e.mu.Unlock()
}

// Source is a ports.FileSource over an open file.
type Source struct {
	*os.File
	size int64
}

// Open opens path as a FileSource.
func Open(path string) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &Source{File: f, size: st.Size()}, nil
}

// Size is the file's size when it was opened.
func (s *Source) Size() int64 { return s.size }
