package memory_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// receiver is a ports.FileReceiver writing into a memory.Downloads folder,
// as the accept use-case would.
type receiver struct {
	dl      *memory.Downloads
	want    [32]byte
	refuse  error
	onWrite func(total int64) // called after each Write with the bytes written so far in this stream

	mu       sync.Mutex
	from     domain.Identity
	restarts int
	written  int64
	finished []error
	names    []string
}

const rel = "file.bin"

func (r *receiver) Incoming(ctx context.Context, from domain.Identity, id domain.TransferID, index int, _ domain.FilePath, alg domain.FileHashAlg) (ports.IncomingFile, error) {
	if r.refuse != nil {
		return nil, r.refuse
	}
	part, err := r.dl.OpenPart(id, rel)
	if err != nil {
		return nil, err
	}
	size, err := part.Size()
	if err != nil {
		return nil, err
	}
	h := domain.NewFileHasher(alg)
	if _, err := io.Copy(h, io.NewSectionReader(part, 0, size)); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.from, r.written = from, 0
	r.mu.Unlock()
	return &incoming{r: r, part: part, off: size, prefix: h.Sum()}, nil
}

type incoming struct {
	r      *receiver
	part   ports.PartFile
	off    int64
	prefix [32]byte
}

func (f *incoming) Offset() int64        { return f.off }
func (f *incoming) PrefixHash() [32]byte { return f.prefix }
func (f *incoming) SourceHash([32]byte)  {}
func (f *incoming) Restart() error {
	f.r.mu.Lock()
	f.r.restarts++
	f.r.mu.Unlock()
	return f.part.Truncate(0)
}

func (f *incoming) Write(b []byte) (int, error) {
	n, err := f.part.Write(b)
	f.r.mu.Lock()
	f.r.written += int64(n)
	total, hook := f.r.written, f.r.onWrite
	f.r.mu.Unlock()
	if hook != nil {
		hook(total)
	}
	return n, err
}

func (f *incoming) Finish(err error) error {
	f.r.mu.Lock()
	f.r.finished = append(f.r.finished, err)
	f.r.mu.Unlock()
	if err != nil {
		return f.part.Close()
	}
	size, err := f.part.Size()
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f.part, 0, size)); err != nil {
		return err
	}
	if [32]byte(h.Sum(nil)) != f.r.want {
		f.part.Close()
		return ports.ErrIntegrity
	}
	name, err := f.part.Commit()
	f.r.mu.Lock()
	f.r.names = append(f.r.names, name)
	f.r.mu.Unlock()
	return err
}

// fileSetup makes alice (sender) and bob (receiver serving r) and a source
// file of size bytes.
func fileSetup(t *testing.T, size int) (*memory.Network, *memory.Host, *memory.Host, *receiver, []byte, ports.FileSource) {
	t.Helper()
	n := memory.NewNetwork()
	a, b := host(t, n, "alice", memory.AcceptAll), host(t, n, "bob", memory.AcceptAll)
	data := make([]byte, size)
	rand.Read(data)
	r := &receiver{dl: memory.NewDownloads(), want: sha256.Sum256(data)}
	serve(t, func(ctx context.Context) error { return b.Files().Serve(ctx, r) })
	waitServing(t, b.Host, true)
	lf := memory.NewLocalFiles()
	lf.Put("/home/alice/file.bin", data)
	src, err := lf.Open("/home/alice/file.bin", "")
	if err != nil {
		t.Fatal(err)
	}
	return n, a.Host, b.Host, r, data, src
}

func TestFileTransportSendsAndResumes(t *testing.T) {
	const size = 300<<10 + 17
	tests := []struct {
		name        string
		part        func(data []byte) []byte // what the receiver already has
		wantWritten int64
		wantRestart int
	}{
		{"fresh", func([]byte) []byte { return nil }, size, 0},
		{"matching part resumes", func(d []byte) []byte { return d[:100<<10] }, size - 100<<10, 0},
		{"different part restarts", func(d []byte) []byte { return bytes.Repeat([]byte{'x'}, 100<<10) }, size, 1},
		{"part longer than the file restarts", func(d []byte) []byte { return append(bytes.Clone(d), 'x') }, size, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, a, b, r, data, src := fileSetup(t, size)
			id := domain.NewTransferID()
			if p := tc.part(data); p != nil {
				r.dl.PutPart(id, rel, p)
			}
			var progress []int64
			err := a.Files().Send(context.Background(), b.Peer(), id, 0, src, func(done int64) { progress = append(progress, done) })
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			got, ok := r.dl.File(rel)
			if !ok || !bytes.Equal(got, data) {
				t.Fatalf("received %d bytes (committed %v), want the %d bytes sent", len(got), ok, len(data))
			}
			if r.written != tc.wantWritten || r.restarts != tc.wantRestart {
				t.Fatalf("wrote %d bytes with %d restarts, want %d and %d", r.written, r.restarts, tc.wantWritten, tc.wantRestart)
			}
			if len(progress) == 0 || progress[len(progress)-1] != size {
				t.Fatalf("progress %v does not end at %d", progress, size)
			}
			if !r.from.SameKey(a.Identity().PublicKey()) {
				t.Fatal("the receiver saw another sender")
			}
			if _, ok := r.dl.Part(id, rel); ok {
				t.Fatal("the part file is still there after commit")
			}
		})
	}
}

func TestFileTransportFailures(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		_, a, b, r, _, src := fileSetup(t, 1000)
		r.refuse = errors.New("not accepted")
		err := a.Files().Send(context.Background(), b.Peer(), domain.NewTransferID(), 0, src, nil)
		if !errors.Is(err, ports.ErrTransferRefused) {
			t.Fatalf("Send: %v, want ErrTransferRefused", err)
		}
	})
	t.Run("integrity", func(t *testing.T) {
		_, a, b, r, _, src := fileSetup(t, 1000)
		r.want = [32]byte{1}
		err := a.Files().Send(context.Background(), b.Peer(), domain.NewTransferID(), 0, src, nil)
		if !errors.Is(err, ports.ErrIntegrity) {
			t.Fatalf("Send: %v, want ErrIntegrity", err)
		}
		if len(r.dl.Files()) != 0 {
			t.Fatal("a file that failed its hash got a final name")
		}
	})
	t.Run("disk full", func(t *testing.T) {
		_, a, b, r, _, src := fileSetup(t, 200<<10)
		r.dl.SetAvailable(100 << 10)
		err := a.Files().Send(context.Background(), b.Peer(), domain.NewTransferID(), 0, src, nil)
		if !errors.Is(err, ports.ErrTransferRefused) {
			t.Fatalf("Send to a full disk: %v, want ErrTransferRefused", err)
		}
	})
	t.Run("receiver offline", func(t *testing.T) {
		n := memory.NewNetwork()
		a, b := host(t, n, "alice", memory.AcceptAll), host(t, n, "bob", memory.AcceptAll) // bob serves no files
		lf := memory.NewLocalFiles()
		lf.Put("f", []byte("x"))
		src, _ := lf.Open("f", "")
		err := a.Files().Send(context.Background(), b.Peer(), domain.NewTransferID(), 0, src, nil)
		if !errors.Is(err, domain.ErrPeerOffline) {
			t.Fatalf("Send: %v, want ErrPeerOffline", err)
		}
	})
	t.Run("cancelled keeps the part", func(t *testing.T) {
		_, a, b, r, _, src := fileSetup(t, 1<<20)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r.onWrite = func(total int64) {
			if total >= 256<<10 {
				cancel()
			}
		}
		id := domain.NewTransferID()
		err := a.Files().Send(ctx, b.Peer(), id, 0, src, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Send: %v, want context.Canceled", err)
		}
		part, ok := r.dl.Part(id, rel)
		if !ok || len(part) < 256<<10 || len(part) >= 1<<20 {
			t.Fatalf("after cancel the part holds %d bytes (kept %v)", len(part), ok)
		}
		if len(r.finished) != 1 || r.finished[0] == nil {
			t.Fatalf("Finish calls %v, want one with an error", r.finished)
		}
	})
	t.Run("disconnect then resume", func(t *testing.T) {
		n, a, b, r, data, src := fileSetup(t, 1<<20)
		var once sync.Once
		r.onWrite = func(total int64) {
			if total >= 300<<10 {
				once.Do(func() { n.Disconnect(b) })
			}
		}
		id := domain.NewTransferID()
		err := a.Files().Send(context.Background(), b.Peer(), id, 0, src, nil)
		if !errors.Is(err, memory.ErrDisconnected) {
			t.Fatalf("Send through a disconnect: %v, want ErrDisconnected", err)
		}
		part, _ := r.dl.Part(id, rel)
		n.HealHost(b)
		r.onWrite = nil
		if err := a.Files().Send(context.Background(), b.Peer(), id, 0, src, nil); err != nil {
			t.Fatalf("resume: %v", err)
		}
		if r.written != int64(len(data)-len(part)) {
			t.Fatalf("the resume wrote %d bytes, want the %d missing", r.written, len(data)-len(part))
		}
		if got, _ := r.dl.File(rel); !bytes.Equal(got, data) {
			t.Fatal("the resumed file differs from the source")
		}
	})
}

func TestFileTransportReceiverStopsServing(t *testing.T) {
	n := memory.NewNetwork()
	a, b := host(t, n, "alice", memory.AcceptAll), host(t, n, "bob", memory.AcceptAll)
	data := make([]byte, 2<<20)
	rand.Read(data)
	r := &receiver{dl: memory.NewDownloads(), want: sha256.Sum256(data)}
	stop := serve(t, func(ctx context.Context) error { return b.Files().Serve(ctx, r) })
	waitServing(t, b.Host, true)
	var once sync.Once
	r.onWrite = func(total int64) {
		if total >= 256<<10 {
			once.Do(func() { go stop() }) // Serve waits for this stream: stop it from elsewhere
		}
	}
	lf := memory.NewLocalFiles()
	lf.Put("f", data)
	src, _ := lf.Open("f", "")
	id := domain.NewTransferID()
	err := a.Files().Send(context.Background(), b.Peer(), id, 0, src, nil)
	if !errors.Is(err, memory.ErrDisconnected) || errors.Is(err, context.Canceled) {
		t.Fatalf("Send while the receiver stops: %v, want ErrDisconnected", err)
	}
	r.mu.Lock()
	finished := r.finished
	r.mu.Unlock()
	if len(finished) != 1 || finished[0] == nil {
		t.Fatalf("Finish calls %v, want one with an error", finished)
	}
	if part, ok := r.dl.Part(id, rel); !ok || len(part) == 0 {
		t.Fatal("the part was not kept for a resume")
	}
}
