package udp_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/adapters/udp/internal/diskfile"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

const wait = 60 * time.Second

// rig is a sender and a served receiver writing into a temp folder.
type rig struct {
	sender   *udp.Transport
	alice    domain.LocalIdentity
	receiver *udp.Transport
	bob      domain.Peer
	recv     *diskfile.Receiver
	srcDir   string
	cancel   context.CancelFunc
	served   chan error
	stopOnce sync.Once
}

func newRig(t *testing.T) *rig {
	t.Helper()
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	r := &rig{
		alice:  alice,
		sender: newTransport(t, alice, contract.AcceptAll{}, udp.Config{}),
		recv:   diskfile.New(t.TempDir()),
		srcDir: t.TempDir(),
		served: make(chan error, 1),
	}
	r.receiver = newTransport(t, bob, contract.AcceptAll{}, udp.Config{})
	r.bob = peerOf(bob.Identity, r.receiver)
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	go func() { r.served <- r.receiver.Serve(ctx, r.recv) }()
	t.Cleanup(r.stop)
	return r
}

// stop ends Serve and waits for it; it may be called more than once.
func (r *rig) stop() {
	r.stopOnce.Do(func() {
		r.cancel()
		<-r.served
	})
}

// file writes a random source file and registers it with the receiver.
func (r *rig) file(t *testing.T, id domain.TransferID, index int, name string, size int64) (*diskfile.Source, *diskfile.Expected) {
	t.Helper()
	path := filepath.Join(r.srcDir, name)
	sum, err := diskfile.WriteRandom(path, size, uint64(size)+uint64(index))
	if err != nil {
		t.Fatal(err)
	}
	src, err := diskfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src, r.recv.Expect(id, index, name, sum)
}

func (r *rig) checkLanded(t *testing.T, src *diskfile.Source, e *diskfile.Expected) {
	t.Helper()
	want, err := diskfile.HashFile(src.Name())
	if err != nil {
		t.Fatal(err)
	}
	got, err := diskfile.HashFile(r.recv.Path(e))
	if err != nil {
		t.Fatalf("received file: %v", err)
	}
	if got != want {
		t.Fatalf("%s: received SHA-256 %x, sent %x", e.Name, got, want)
	}
}

func waitFinished(t *testing.T, e *diskfile.Expected) diskfile.Session {
	t.Helper()
	select {
	case <-e.Finished():
	case <-time.After(wait):
		t.Fatalf("%s: Finish was not called", e.Name)
	}
	s := e.Sessions()
	return s[len(s)-1]
}

func TestLargeFileArrivesIdentical(t *testing.T) {
	size := int64(256 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	r := newRig(t)
	id := domain.NewTransferID()
	src, e := r.file(t, id, 0, "big.bin", size)
	var calls int
	var last int64
	err := r.sender.Send(context.Background(), r.bob, id, 0, src, func(done int64) { calls++; last = done })
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	s := waitFinished(t, e)
	if s.FinishErr != nil || s.Result != nil || s.Written != size {
		t.Fatalf("session %+v, want a clean finish of %d bytes", s, size)
	}
	if last != size || calls < 2 {
		t.Fatalf("progress: %d calls ending at %d, want at least start and end at %d", calls, last, size)
	}
	r.checkLanded(t, src, e)
}

func TestThreeTransfersAtOnce(t *testing.T) {
	r := newRig(t)
	id := domain.NewTransferID()
	const n = 3
	srcs := make([]*diskfile.Source, n)
	exps := make([]*diskfile.Expected, n)
	for i := range n {
		srcs[i], exps[i] = r.file(t, id, i, []string{"a.bin", "b.bin", "c.bin"}[i], int64(16<<20+i*4099))
	}
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- r.sender.Send(context.Background(), r.bob, id, i, srcs[i], nil) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	for i := range n {
		waitFinished(t, exps[i])
		r.checkLanded(t, srcs[i], exps[i])
	}
}

func TestCancel(t *testing.T) {
	cases := []struct {
		name    string
		cancel  func(r *rig, e *diskfile.Expected, sendCancel context.CancelFunc)
		wantErr func(error) bool
	}{
		{
			name:    "sender cancels",
			cancel:  func(_ *rig, _ *diskfile.Expected, sendCancel context.CancelFunc) { sendCancel() },
			wantErr: func(err error) bool { return errors.Is(err, context.Canceled) },
		},
		{
			name:    "receiver cancels the file",
			cancel:  func(_ *rig, e *diskfile.Expected, _ context.CancelFunc) { e.Cancel() },
			wantErr: func(err error) bool { return errors.Is(err, ports.ErrTransferRefused) },
		},
		{
			name:    "receiver shuts down",
			cancel:  func(r *rig, _ *diskfile.Expected, _ context.CancelFunc) { go r.stop() },
			wantErr: func(err error) bool { return err != nil && !errors.Is(err, ports.ErrIntegrity) },
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			id := domain.NewTransferID()
			src, e := r.file(t, id, 0, "f.bin", 64<<20)
			// Hold the stream at a quarter so the cancel lands mid-way.
			held, release := make(chan struct{}), make(chan struct{})
			var once bool
			e.OnWrite(func(n int64) {
				if n >= 16<<20 && !once {
					once = true
					close(held)
					<-release
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- r.sender.Send(ctx, r.bob, id, 0, src, nil) }()
			select {
			case <-held:
			case <-time.After(wait):
				t.Fatal("transfer did not reach a quarter")
			}
			c.cancel(r, e, cancel)
			close(release)
			s := waitFinished(t, e)
			if s.FinishErr == nil {
				t.Fatalf("Finish(nil) after a cancel: %+v", s)
			}
			select {
			case err := <-errc:
				t.Logf("Send = %v; Finish(%v)", err, s.FinishErr)
				if !c.wantErr(err) {
					t.Fatalf("Send = %v", err)
				}
			case <-time.After(wait):
				t.Fatal("Send did not return")
			}
			if _, err := diskfile.HashFile(r.recv.Path(e)); err == nil {
				t.Fatal("a cancelled file got its final name")
			}
		})
	}
}
