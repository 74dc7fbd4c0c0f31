package udp_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports/contract"
)

// serve runs tr.Serve until the end of the test.
func serve(t *testing.T, tr *udp.Transport, recv *contract.RecordingReceiver) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- tr.Serve(ctx, recv) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// A stale endpoint now used by someone else must not hide a later endpoint
// where the peer really is.
func TestDialSkipsEndpointWithAnotherKey(t *testing.T) {
	alice, bob, carol := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob"), newLocalIdentity(t, "carol")
	stranger := newTransport(t, carol, contract.AcceptAll{}, udp.Config{})
	receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{})
	strangerRecv := contract.NewRecordingReceiver(alice.Identity)
	serve(t, stranger, strangerRecv)
	recv := contract.NewRecordingReceiver(alice.Identity)
	serve(t, receiver, recv)

	tests := []struct {
		name      string
		endpoints []string
		wantKey   bool
	}{
		{"stale endpoint first, then the peer", append(stranger.Endpoints(), receiver.Endpoints()...), false},
		{"only a stale endpoint", stranger.Endpoints(), true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh sender each time: a cached connection would skip the dial.
			sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
			peer := domain.Peer{Identity: bob.Identity, Online: true, Endpoints: domain.Endpoints{File: tc.endpoints}}
			id := domain.NewTransferID()
			content := bytes.Repeat([]byte{byte(i + 1)}, 64<<10)
			f := recv.Add(id, 0, content, nil)
			err := sender.Send(context.Background(), peer, id, 0, contract.NewMemorySource(content), nil)
			var kc *domain.KeyChangedError
			if tc.wantKey {
				if !errors.As(err, &kc) {
					t.Fatalf("Send = %v, want *domain.KeyChangedError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send = %v, want success through the second endpoint", err)
			}
			f.WaitFinished(t)
			if !bytes.Equal(f.Data(), content) {
				t.Fatal("the file arrived altered")
			}
		})
	}
	if strangerRecv.Calls() != 0 {
		t.Fatal("the stranger at the stale endpoint was asked for a file")
	}
}
