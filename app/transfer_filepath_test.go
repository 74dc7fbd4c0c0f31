package app_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// twoPathTransport is a scriptedTransport (the UDP path) that also offers
// a TCP path (ports.TCPFiles) answering with the next error of tcpScript.
type twoPathTransport struct {
	scriptedTransport
	tmu       sync.Mutex
	tcpScript []error
	tcpCalls  int
	hosts     []string
}

func (s *twoPathTransport) SendTCP(_ context.Context, _ domain.Peer, host string, _ domain.TransferID, _ int, src ports.FileSource, progress func(int64)) error {
	if _, err := io.Copy(io.Discard, io.NewSectionReader(src, 0, src.Size())); err != nil {
		return err
	}
	s.tmu.Lock()
	defer s.tmu.Unlock()
	s.tcpCalls++
	s.hosts = append(s.hosts, host)
	if len(s.tcpScript) > 0 {
		err := s.tcpScript[0]
		s.tcpScript = s.tcpScript[1:]
		if err != nil {
			return err
		}
	}
	progress(src.Size())
	return nil
}

// pathLink is the message link reporting path for every peer.
type pathLink struct {
	*fakeLink
	path domain.Path
}

func (l pathLink) Path(domain.Identity) domain.Path { return l.path }

func TestTransferFileChoosesThePath(t *testing.T) {
	lan := domain.Path{Kind: domain.PathLAN, Transport: domain.TransportTCP, Remote: "192.168.1.5:4100"}
	quic := domain.Path{Kind: domain.PathDirect, Transport: domain.TransportQUIC, Remote: "203.0.113.9:5000"}
	lost := fmt.Errorf("dial 192.168.1.5:5000: %w", io.ErrUnexpectedEOF)
	tests := []struct {
		name             string
		link             domain.Path
		tcpScript        []error
		wantTCP, wantUDP int
		wantPath         domain.FilePath
		wantState        domain.TransferState
	}{
		{"auto beside a direct TCP link rides TCP", lan, nil, 1, 0, domain.FilePathTCP, domain.TransferCompleted},
		{"auto beside a QUIC link rides UDP", quic, nil, 0, 1, domain.FilePathUDP, domain.TransferCompleted},
		{"a failed TCP stream goes on over UDP", lan, []error{lost}, 1, 1, domain.FilePathUDP, domain.TransferCompleted},
		{"the receiver's verdict on TCP is final", lan, []error{ports.ErrIntegrity}, 1, 0, domain.FilePathTCP, domain.TransferFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			local := memory.NewLocalFiles()
			local.Put("/docs/film.mkv", []byte("moving pictures"))
			transport := &twoPathTransport{tcpScript: tc.tcpScript}
			tf, err := app.NewTransferFile(w.me, local, transport, pathLink{w.link, tc.link}, w.transfers, w.verify, w.clock, w.events, fastRetry)
			if err != nil {
				t.Fatal(err)
			}
			run(t, tf.Run)
			ctx := context.Background()
			tr, err := tf.Handle(ctx, app.TransferFileInput{To: w.bob.Name(), Path: "/docs/film.mkv"})
			if err != nil {
				t.Fatal(err)
			}
			if err := tf.Accepted(ctx, w.bob.Identity, tr.ID()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the transfer to end", func() bool {
				got, err := w.transfers.Get(ctx, tr.ID())
				return err == nil && got.State().Terminal()
			})
			got, _ := w.transfers.Get(ctx, tr.ID())
			if got.State() != tc.wantState || got.FilePath() != tc.wantPath {
				t.Fatalf("ended %v over %q (%s), want %v over %q", got.State(), got.FilePath(), got.Reason(), tc.wantState, tc.wantPath)
			}
			transport.tmu.Lock()
			tcpCalls, hosts := transport.tcpCalls, transport.hosts
			transport.tmu.Unlock()
			transport.mu.Lock()
			udpCalls := transport.calls
			transport.mu.Unlock()
			if tcpCalls != tc.wantTCP || udpCalls != tc.wantUDP {
				t.Fatalf("%d TCP and %d UDP streams, want %d and %d", tcpCalls, udpCalls, tc.wantTCP, tc.wantUDP)
			}
			for _, h := range hosts {
				if h != "192.168.1.5" {
					t.Fatalf("TCP stream dialled host %q, want the link's 192.168.1.5", h)
				}
			}
		})
	}
}

// warmingTransport is a twoPathTransport that records Warm calls
// (ports.FileWarmer).
type warmingTransport struct {
	twoPathTransport
	wmu    sync.Mutex
	warmed []domain.Username
}

func (s *warmingTransport) Warm(_ context.Context, to domain.Peer) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.warmed = append(s.warmed, to.Name())
	return nil
}

func (s *warmingTransport) warmedPeers() []domain.Username {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return append([]domain.Username(nil), s.warmed...)
}

// An offer that will ride QUIC readies the connection to the peer as it
// leaves, before the answer; one that will ride TCP (a connection per
// file) does not.
func TestTransferFileWarmsTheQUICPathWhileTheOfferWaits(t *testing.T) {
	for _, tc := range []struct {
		name string
		link domain.Path
		warm bool
	}{
		{"beside a QUIC link", domain.Path{Kind: domain.PathDirect, Transport: domain.TransportQUIC, Remote: "203.0.113.9:5000"}, true},
		{"beside a direct TCP link", domain.Path{Kind: domain.PathLAN, Transport: domain.TransportTCP, Remote: "192.168.1.5:4100"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			local := memory.NewLocalFiles()
			local.Put("/docs/film.mkv", []byte("moving pictures"))
			transport := &warmingTransport{}
			tf, err := app.NewTransferFile(w.me, local, transport, pathLink{w.link, tc.link}, w.transfers, w.verify, w.clock, w.events, fastRetry)
			if err != nil {
				t.Fatal(err)
			}
			run(t, tf.Run)
			ctx := context.Background()
			// A first transfer that completes shows Run is up (before it,
			// nothing is started or warmed).
			first, err := tf.Handle(ctx, app.TransferFileInput{To: w.bob.Name(), Path: "/docs/film.mkv"})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the first transfer completed", func() bool {
				_ = tf.Accepted(ctx, w.bob.Identity, first.ID())
				got, err := w.transfers.Get(ctx, first.ID())
				return err == nil && got.State() == domain.TransferCompleted
			})
			if _, err := tf.Handle(ctx, app.TransferFileInput{To: w.bob.Name(), Path: "/docs/film.mkv"}); err != nil {
				t.Fatal(err)
			}
			if !tc.warm {
				// The choice is made before Handle returns.
				if got := transport.warmedPeers(); len(got) != 0 {
					t.Fatalf("warmed %v for files that ride TCP", got)
				}
				return
			}
			waitFor(t, "the connection to bob warmed", func() bool {
				got := transport.warmedPeers()
				return len(got) > 0 && got[len(got)-1].Equal(w.bob.Name())
			})
		})
	}
}
