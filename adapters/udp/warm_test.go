package udp_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports/contract"
)

// countingVerifier accepts everyone and counts the connections it checked.
type countingVerifier struct{ n atomic.Int64 }

func (v *countingVerifier) VerifyPeer(context.Context, domain.Identity) error {
	v.n.Add(1)
	return nil
}

// Warm opens the QUIC connection before the first stream, and the file
// then rides it: the receiver checks one connection for both.
func TestWarmReadiesTheConnectionTheFileRides(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	v := &countingVerifier{}
	sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
	receiver := newTransport(t, bob, v, udp.Config{})
	recv := contract.NewRecordingReceiver(alice.Identity)
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { defer close(served); _ = receiver.Serve(serveCtx, recv) }()
	defer func() { stop(); <-served }()

	to := peerOf(bob.Identity, receiver)
	if err := sender.Warm(ctx, to); err != nil {
		t.Fatalf("Warm: %v", err)
	}
	// The receiver checks the connection as it accepts it, which may
	// follow the sender's end of the handshake.
	for v.n.Load() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the receiver never checked the warmed connection")
		}
		time.Sleep(time.Millisecond)
	}
	id := domain.NewTransferID()
	content := []byte("the first byte need not wait for a handshake")
	recv.Add(id, 0, content, nil)
	if err := sender.Send(ctx, to, id, 0, contract.NewMemorySource(content), nil); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := v.n.Load(); n != 1 {
		t.Fatalf("the file opened %d connections in all, want the warmed one only", n)
	}
}
