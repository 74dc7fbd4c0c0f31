package app_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// scriptedTransport answers each Send with the next error of its script
// (nil when the script is used up), after reading the whole source.
type scriptedTransport struct {
	mu     sync.Mutex
	script []error
	calls  int
	hashes map[int][32]byte
}

func (s *scriptedTransport) Send(_ context.Context, _ domain.Peer, _ domain.TransferID, index int, src ports.FileSource, progress func(int64)) error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(src, 0, src.Size())); err != nil {
		return err
	}
	progress(src.Size())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.script) > 0 {
		err := s.script[0]
		s.script = s.script[1:]
		if err != nil {
			return err
		}
	}
	if s.hashes == nil {
		s.hashes = make(map[int][32]byte)
	}
	s.hashes[index] = [32]byte(h.Sum(nil))
	return nil
}
func (s *scriptedTransport) Serve(ctx context.Context, _ ports.FileReceiver) error {
	<-ctx.Done()
	return nil
}
func (s *scriptedTransport) Endpoints() []string       { return []string{"scripted"} }
func (s *scriptedTransport) NAT() domain.NATMapping    { return domain.NATUnknown }
func (s *scriptedTransport) Candidates() []string      { return nil }
func (s *scriptedTransport) Attempts() []ports.Attempt { return nil }

func TestTransferFileOutcomes(t *testing.T) {
	broken := fmt.Errorf("stream broke: %w", io.ErrUnexpectedEOF)
	tests := []struct {
		name   string
		script []error
		want   domain.TransferState
		calls  int
	}{
		{"first try", nil, domain.TransferCompleted, 1},
		{"link lost twice, then resumed", []error{broken, broken}, domain.TransferCompleted, 3},
		{"integrity failure fails at once", []error{ports.ErrIntegrity}, domain.TransferFailed, 1},
		{"refused three times in a row", []error{ports.ErrTransferRefused, ports.ErrTransferRefused, ports.ErrTransferRefused}, domain.TransferFailed, 3},
		{"refused twice, then accepted", []error{ports.ErrTransferRefused, ports.ErrTransferRefused}, domain.TransferCompleted, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			local := memory.NewLocalFiles()
			content := []byte("a file worth sending")
			local.Put("/docs/report.pdf", content)
			transport := &scriptedTransport{script: tc.script}
			tf, err := app.NewTransferFile(w.me, local, transport, w.link, w.transfers, w.verify, w.clock, w.events, fastRetry)
			if err != nil {
				t.Fatal(err)
			}
			run(t, tf.Run)
			ctx := context.Background()
			tr, err := tf.Handle(ctx, app.TransferFileInput{To: w.bob.Name(), Path: "/docs/report.pdf"})
			if err != nil {
				t.Fatal(err)
			}
			offers := w.link.envelopes(ports.KindOffer)
			if len(offers) != 1 || offers[0].Env.TransferID != tr.ID() {
				t.Fatalf("offers sent: %v", offers)
			}
			m := offers[0].Env.Manifest
			if m.Name != "report.pdf" || len(m.Files) != 1 || m.Files[0].Hash != ([32]byte{}) || m.Files[0].Size != int64(len(content)) {
				t.Fatalf("offered manifest %+v", m)
			}
			if tr.Source() != "/docs/report.pdf" {
				t.Fatalf("source %q not kept for a resume", tr.Source())
			}
			// Only the peer it was offered to may accept it.
			eve := mkLocal(t, "eve")
			if err := tf.Accepted(ctx, eve.Identity, tr.ID()); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("accept by another peer: %v", err)
			}
			if err := tf.Accepted(ctx, w.bob.Identity, tr.ID()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the transfer to end", func() bool {
				got, err := w.transfers.Get(ctx, tr.ID())
				return err == nil && got.State().Terminal()
			})
			got, _ := w.transfers.Get(ctx, tr.ID())
			if got.State() != tc.want {
				t.Fatalf("ended %v (%s), want %v", got.State(), got.Reason(), tc.want)
			}
			transport.mu.Lock()
			defer transport.mu.Unlock()
			if transport.calls != tc.calls {
				t.Fatalf("%d streams, want %d", transport.calls, tc.calls)
			}
			if tc.want == domain.TransferCompleted && transport.hashes[0] != sha256.Sum256(content) {
				t.Fatal("the bytes streamed are not the file's")
			}
		})
	}
}
