package contract

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// FileTransportEnds are two file transports that can reach each other.
type FileTransportEnds struct {
	// Sender sends as SenderIdentity.
	Sender         ports.FileTransport
	SenderIdentity domain.Identity
	// Receiver is served by the suite; ReceiverPeer is how Sender reaches it.
	Receiver     ports.FileTransport
	ReceiverPeer domain.Peer
	// Path is the carrier the receiver's FileReceiver must be told
	// (FilePathNone: a transport without one; not checked).
	Path domain.FilePath
}

// FileTransportFactory builds a fresh pair for one test and registers their
// cleanup with t.Cleanup. The receiver must check every sender with
// receiverVerifier.
type FileTransportFactory func(t *testing.T, receiverVerifier ports.PeerVerifier) FileTransportEnds

// ftWait is how long the suite waits for anything before failing.
const ftWait = 30 * time.Second

// FileTransport runs the ports.FileTransport contract against newEnds.
func FileTransport(t *testing.T, newEnds FileTransportFactory) {
	t.Run("bytes arrive identical", func(t *testing.T) {
		for _, size := range []int{0, 1, 3<<20 + 7} {
			t.Run(fmt.Sprint(size), func(t *testing.T) {
				p := ftStart(t, newEnds, AcceptAll{})
				content := ftRandom(t, size)
				f := p.recv.Add(p.id, 0, content, nil)
				var prog ftProgress
				err := p.ends.Sender.Send(p.ctx, p.ends.ReceiverPeer, p.id, 0, NewMemorySource(content), prog.record)
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				f.mustFinish(t, true)
				if got := f.Data(); !bytes.Equal(got, content) {
					t.Fatalf("received %d bytes differing from the %d sent", len(got), len(content))
				}
				if got := p.recv.Path(); p.ends.Path != domain.FilePathNone && got != p.ends.Path {
					t.Fatalf("the receiver was told the stream rides %q, want %q", got, p.ends.Path)
				}
				if f.Written() != int64(size) || f.Restarted() {
					t.Fatalf("wrote %d bytes (restarted %v), want %d", f.Written(), f.Restarted(), size)
				}
				prog.check(t, 0, int64(size))
			})
		}
	})

	t.Run("resume", func(t *testing.T) {
		// Resumes start at a 4 MiB chunk boundary (domain.ResumeOffset).
		content := ftRandom(t, 2*domain.HashChunkSize+11)
		bad := bytes.Clone(content[:domain.HashChunkSize+5])
		bad[12345] ^= 1
		cases := []struct {
			name        string
			prefix      []byte
			wantRestart bool
		}{
			{"matching prefix sends only the rest", content[:domain.HashChunkSize+3], false},
			{"whole file already there", content, false},
			{"differing prefix restarts", bad, true},
			{"prefix longer than the file restarts", append(bytes.Clone(content), 1, 2, 3), true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				p := ftStart(t, newEnds, AcceptAll{})
				f := p.recv.Add(p.id, 3, content, c.prefix)
				var prog ftProgress
				if err := p.ends.Sender.Send(p.ctx, p.ends.ReceiverPeer, p.id, 3, NewMemorySource(content), prog.record); err != nil {
					t.Fatalf("Send: %v", err)
				}
				f.mustFinish(t, true)
				if !bytes.Equal(f.Data(), content) {
					t.Fatal("received bytes differ from the source")
				}
				first := domain.ResumeOffset(int64(len(c.prefix)), int64(len(content)))
				want := int64(len(content)) - first
				if c.wantRestart {
					want, first = int64(len(content)), 0
				}
				if f.Restarted() != c.wantRestart || f.Written() != want {
					t.Fatalf("restarted %v, wrote %d bytes; want restarted %v, %d bytes", f.Restarted(), f.Written(), c.wantRestart, want)
				}
				prog.check(t, first, int64(len(content)))
			})
		}
	})

	t.Run("refusal propagates", func(t *testing.T) {
		p := ftStart(t, newEnds, AcceptAll{})
		// Nothing registered: the receiver's Incoming refuses.
		err := p.ends.Sender.Send(p.ctx, p.ends.ReceiverPeer, p.id, 0, NewMemorySource([]byte("hello")), nil)
		if !errors.Is(err, ports.ErrTransferRefused) {
			t.Fatalf("Send = %v, want ErrTransferRefused", err)
		}
	})

	t.Run("integrity error propagates", func(t *testing.T) {
		p := ftStart(t, newEnds, AcceptAll{})
		content := ftRandom(t, 100<<10)
		f := p.recv.Add(p.id, 0, content, nil)
		f.content[0] ^= 1 // the offer differs from the bytes sent
		err := p.ends.Sender.Send(p.ctx, p.ends.ReceiverPeer, p.id, 0, NewMemorySource(content), nil)
		if !errors.Is(err, ports.ErrIntegrity) {
			t.Fatalf("Send = %v, want ErrIntegrity", err)
		}
		f.mustFinish(t, true)
	})

	t.Run("receiver failure propagates", func(t *testing.T) {
		p := ftStart(t, newEnds, AcceptAll{})
		content := ftRandom(t, 8<<20)
		f := p.recv.Add(p.id, 0, content, nil)
		f.FailAfter(1 << 20)
		err := p.ends.Sender.Send(p.ctx, p.ends.ReceiverPeer, p.id, 0, NewMemorySource(content), nil)
		if !errors.Is(err, ports.ErrTransferRefused) {
			t.Fatalf("Send = %v, want ErrTransferRefused", err)
		}
		f.mustFinish(t, false)
	})

	t.Run("sender cancel propagates", func(t *testing.T) {
		p := ftStart(t, newEnds, AcceptAll{})
		// More than one 4 MiB chunk: a transport that stripes a file
		// cancels every stripe.
		content := ftRandom(t, 2*domain.HashChunkSize+1)
		f := p.recv.Add(p.id, 0, content, nil)
		src := NewMemorySource(content)
		release := src.GateAfter(1 << 20)
		defer release()
		ctx, cancel := context.WithCancel(p.ctx)
		errc := make(chan error, 1)
		go func() { errc <- p.ends.Sender.Send(ctx, p.ends.ReceiverPeer, p.id, 0, src, nil) }()
		f.waitFirstWrite(t)
		cancel()
		f.mustFinish(t, false)
		release()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Send = %v, want context.Canceled", err)
			}
		case <-time.After(ftWait):
			t.Fatal("Send did not return after cancel")
		}
	})

	t.Run("several files at once", func(t *testing.T) {
		p := ftStart(t, newEnds, AcceptAll{})
		const n = 3
		contents := make([][]byte, n)
		files := make([]*RecordingFile, n)
		for i := range n {
			contents[i] = ftRandom(t, 1<<20+i)
			files[i] = p.recv.Add(p.id, i, contents[i], nil)
		}
		errs := make(chan error, n)
		for i := range n {
			go func() {
				errs <- p.ends.Sender.Send(p.ctx, p.ends.ReceiverPeer, p.id, i, NewMemorySource(contents[i]), nil)
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
		for i, f := range files {
			f.mustFinish(t, true)
			if !bytes.Equal(f.Data(), contents[i]) {
				t.Fatalf("file %d differs", i)
			}
		}
	})

	t.Run("receiver key mismatch refused", func(t *testing.T) {
		p := ftStart(t, newEnds, AcceptAll{})
		content := []byte("secret")
		p.recv.Add(p.id, 0, content, nil)
		impostor := p.ends.ReceiverPeer
		impostor.Identity = ftIdentity(t, impostor.Identity.Name())
		err := p.ends.Sender.Send(p.ctx, impostor, p.id, 0, NewMemorySource(content), nil)
		var kc *domain.KeyChangedError
		if !errors.As(err, &kc) {
			t.Fatalf("Send to a peer expected with another key = %v, want *domain.KeyChangedError", err)
		}
		if p.recv.Calls() != 0 {
			t.Fatal("the receiver was asked for a file although the key did not match")
		}
	})

	t.Run("sender refused by the receiver's verifier", func(t *testing.T) {
		p := ftStart(t, newEnds, RefuseAll{})
		content := []byte("unwelcome")
		p.recv.Add(p.id, 0, content, nil)
		err := p.ends.Sender.Send(p.ctx, p.ends.ReceiverPeer, p.id, 0, NewMemorySource(content), nil)
		if err == nil {
			t.Fatal("Send succeeded although the receiver refuses the sender")
		}
		t.Logf("Send = %v", err)
		if p.recv.Calls() != 0 {
			t.Fatal("the receiver was asked for a file from a refused peer")
		}
	})
}

// AcceptAll is a PeerVerifier that accepts every identity.
type AcceptAll struct{}

func (AcceptAll) VerifyPeer(context.Context, domain.Identity) error { return nil }

// RefuseAll is a PeerVerifier that knows nobody.
type RefuseAll struct{}

func (RefuseAll) VerifyPeer(context.Context, domain.Identity) error { return domain.ErrUnknownPeer }

type ftPair struct {
	ends FileTransportEnds
	recv *RecordingReceiver
	id   domain.TransferID
	ctx  context.Context
}

// ftStart builds a pair and serves its receiver until the test ends.
func ftStart(t *testing.T, newEnds FileTransportFactory, v ports.PeerVerifier) ftPair {
	t.Helper()
	ends := newEnds(t, v)
	ctx, cancel := context.WithTimeout(context.Background(), 2*ftWait)
	recv := NewRecordingReceiver(ends.SenderIdentity)
	served := make(chan error, 1)
	go func() { served <- ends.Receiver.Serve(ctx, recv) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve returned %v after cancel, want nil", err)
			}
		case <-time.After(ftWait):
			t.Error("Serve did not return after its context was cancelled")
		}
	})
	// A receiver may answer "busy" to a stream that comes before Serve
	// took recv: wait for that where the receiver says it.
	if s, ok := ends.Receiver.(interface{ Serving() bool }); ok {
		for deadline := time.Now().Add(ftWait); !s.Serving(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the receiver did not start serving")
			}
		}
	}
	return ftPair{ends: ends, recv: recv, id: domain.NewTransferID(), ctx: ctx}
}

func ftIdentity(t *testing.T, name domain.Username) domain.Identity {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := domain.NewIdentity(name, pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func ftRandom(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// ftProgress records progress calls.
type ftProgress struct {
	mu    sync.Mutex
	calls []int64
}

func (p *ftProgress) record(done int64) {
	p.mu.Lock()
	p.calls = append(p.calls, done)
	p.mu.Unlock()
}

// check: never decreasing, within first..size, ending at size.
func (p *ftProgress) check(t *testing.T, first, size int64) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) == 0 || p.calls[len(p.calls)-1] != size {
		t.Fatalf("progress calls %v do not end at %d", p.calls, size)
	}
	prev := first
	for _, c := range p.calls {
		if c < prev || c > size {
			t.Fatalf("progress calls %v leave %d..%d or go back", p.calls, first, size)
		}
		prev = c
	}
}

// MemorySource is a ports.FileSource over bytes. GateAfter makes reads past
// an offset wait, so a test can act while a transfer is under way.
type MemorySource struct {
	r    *bytes.Reader
	size int64
	mu   sync.Mutex
	gate int64
	open chan struct{}
}

// NewMemorySource serves b.
func NewMemorySource(b []byte) *MemorySource {
	return &MemorySource{r: bytes.NewReader(b), size: int64(len(b)), gate: -1}
}

// GateAfter blocks reads that reach past offset until the returned release
// is called (it may be called more than once).
func (s *MemorySource) GateAfter(offset int64) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate, s.open = offset, make(chan struct{})
	open := s.open
	var once sync.Once
	return func() { once.Do(func() { close(open) }) }
}

func (s *MemorySource) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	gate, open := s.gate, s.open
	s.mu.Unlock()
	if gate >= 0 && off+int64(len(p)) > gate {
		<-open
	}
	return s.r.ReadAt(p, off)
}

func (s *MemorySource) Size() int64  { return s.size }
func (s *MemorySource) Close() error { return nil }

// RecordingReceiver is a ports.FileReceiver that keeps files in memory.
// Files must be registered with Add; other requests are refused.
type RecordingReceiver struct {
	from  domain.Identity
	mu    sync.Mutex
	files map[ftKey]*RecordingFile
	calls int
	path  domain.FilePath    // of the last Incoming
	alg   domain.FileHashAlg // of the last Incoming
}

type ftKey struct {
	id    domain.TransferID
	index int
}

// NewRecordingReceiver accepts files only from the identity from.
func NewRecordingReceiver(from domain.Identity) *RecordingReceiver {
	return &RecordingReceiver{from: from, files: make(map[ftKey]*RecordingFile)}
}

// Add expects file index of transfer id with the given whole content (its
// hash is checked at Finish) and an existing part prefix.
func (r *RecordingReceiver) Add(id domain.TransferID, index int, content, prefix []byte) *RecordingFile {
	f := &RecordingFile{
		content:  bytes.Clone(content),
		size:     int64(len(content)),
		data:     bytes.Clone(prefix),
		first:    make(chan struct{}),
		finished: make(chan struct{}),
	}
	r.mu.Lock()
	r.files[ftKey{id, index}] = f
	r.mu.Unlock()
	return f
}

// Calls is how many times Incoming was called.
func (r *RecordingReceiver) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// Path is the carrier the last Incoming was told.
func (r *RecordingReceiver) Path() domain.FilePath {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.path
}

// Hash is the chunk hash the last Incoming was told.
func (r *RecordingReceiver) Hash() domain.FileHashAlg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.alg
}

func (r *RecordingReceiver) Incoming(_ context.Context, from domain.Identity, id domain.TransferID, index int, path domain.FilePath, alg domain.FileHashAlg) (ports.IncomingFile, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.path, r.alg = path, alg
	if !alg.Valid() {
		return nil, fmt.Errorf("file hash %v", alg)
	}
	if !r.from.SameKey(from.PublicKey()) {
		return nil, errors.New("transfer from another peer")
	}
	f := r.files[ftKey{id, index}]
	if f == nil {
		return nil, fmt.Errorf("transfer %s file %d: %w", id.Short(), index, domain.ErrNotFound)
	}
	f.mu.Lock()
	f.alg = alg
	f.mu.Unlock()
	return f, nil
}

// RecordingFile is a ports.IncomingFile in memory.
type RecordingFile struct {
	mu        sync.Mutex
	content   []byte             // the whole file, checked at Finish
	alg       domain.FileHashAlg // the chunk hash of the current stream
	size      int64
	source    *[32]byte // the sender's hash, once it came
	data      []byte
	written   int64
	restarted bool
	failAfter int64
	first     chan struct{}
	firstOnce sync.Once
	finished  chan struct{}
	finishes  int
	finishArg error
}

// FailAfter makes Write fail once n bytes were written, as a receiver that
// cancels or runs out of space.
func (f *RecordingFile) FailAfter(n int64) { f.mu.Lock(); f.failAfter = n; f.mu.Unlock() }

// Offset cuts the prefix to its last chunk boundary, as a receiver does;
// a prefix longer than the file is left for the sender to restart.
func (f *RecordingFile) Offset() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := int64(len(f.data)); n <= f.size {
		f.data = f.data[:domain.ResumeOffset(n, f.size)]
	}
	return int64(len(f.data))
}

func (f *RecordingFile) PrefixHash() [32]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fileHash(f.alg, f.data)
}

func (f *RecordingFile) SourceHash(sum [32]byte) { f.mu.Lock(); f.source = &sum; f.mu.Unlock() }

func fileHash(alg domain.FileHashAlg, b []byte) [32]byte {
	h := domain.NewFileHasher(alg)
	h.Write(b)
	return h.Sum()
}

func (f *RecordingFile) Restart() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data, f.restarted = f.data[:0], true
	return nil
}

func (f *RecordingFile) Write(p []byte) (int, error) {
	f.firstOnce.Do(func() { close(f.first) })
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finishes > 0 {
		return 0, errors.New("write after finish")
	}
	if f.failAfter > 0 && f.written+int64(len(p)) > f.failAfter {
		return 0, io.ErrShortWrite
	}
	f.data = append(f.data, p...)
	f.written += int64(len(p))
	return len(p), nil
}

func (f *RecordingFile) Finish(err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finishes++
	if f.finishes == 1 {
		f.finishArg = err
		close(f.finished)
	}
	if err != nil {
		return nil
	}
	if got := fileHash(f.alg, f.data); !bytes.Equal(f.data, f.content) || got != fileHash(f.alg, f.content) || f.source == nil || *f.source != got {
		return ports.ErrIntegrity
	}
	return nil
}

// Data is what was received, prefix included.
func (f *RecordingFile) Data() []byte { f.mu.Lock(); defer f.mu.Unlock(); return bytes.Clone(f.data) }

// Written is how many bytes were written through Write.
func (f *RecordingFile) Written() int64 { f.mu.Lock(); defer f.mu.Unlock(); return f.written }

// Restarted reports whether Restart was called.
func (f *RecordingFile) Restarted() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.restarted }

// WaitFinished waits until Finish was called.
func (f *RecordingFile) WaitFinished(t *testing.T) {
	t.Helper()
	select {
	case <-f.finished:
	case <-time.After(ftWait):
		t.Fatal("Finish was not called")
	}
}

// FinishErr is the error Finish was first called with.
func (f *RecordingFile) FinishErr() error { f.mu.Lock(); defer f.mu.Unlock(); return f.finishArg }

func (f *RecordingFile) waitFirstWrite(t *testing.T) {
	t.Helper()
	select {
	case <-f.first:
	case <-time.After(ftWait):
		t.Fatal("no byte arrived")
	}
}

// mustFinish waits for Finish, checks it was called once and with a nil
// error exactly when ok.
func (f *RecordingFile) mustFinish(t *testing.T, ok bool) {
	t.Helper()
	select {
	case <-f.finished:
	case <-time.After(ftWait):
		t.Fatal("Finish was not called")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finishes != 1 {
		t.Fatalf("Finish called %d times, want once", f.finishes)
	}
	if (f.finishArg == nil) != ok {
		t.Fatalf("Finish(%v), want an error: %v", f.finishArg, !ok)
	}
}
