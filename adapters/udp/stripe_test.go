package udp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// stripePair is a sender and a served receiver with their configurations.
func stripePair(t *testing.T, senderCfg, receiverCfg udp.Config, old bool) (sender, receiver *udp.Transport, peer domain.Peer, recv *contract.RecordingReceiver) {
	t.Helper()
	return stripePairOf(t, senderCfg, old, func(bob domain.LocalIdentity) *udp.Transport {
		return newTransport(t, bob, contract.AcceptAll{}, receiverCfg)
	})
}

// stripePairOf is stripePair with a receiver newReceiver makes.
func stripePairOf(t *testing.T, senderCfg udp.Config, old bool, newReceiver func(bob domain.LocalIdentity) *udp.Transport) (sender, receiver *udp.Transport, peer domain.Peer, recv *contract.RecordingReceiver) {
	t.Helper()
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	sender = newTransport(t, alice, contract.AcceptAll{}, senderCfg)
	receiver = newReceiver(bob)
	if old {
		udp.SpeakOnlyVersion2(receiver)
	}
	recv = contract.NewRecordingReceiver(alice.Identity)
	serveUntilCleanup(t, receiver, recv)
	return sender, receiver, peerOf(bob.Identity, receiver), recv
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sendAndCheck sends content as file index of a new transfer and checks
// that it arrived identical and verified.
func sendAndCheck(t *testing.T, sender ports.FileTransport, peer domain.Peer, recv *contract.RecordingReceiver, index int, content []byte) {
	t.Helper()
	id := domain.NewTransferID()
	f := recv.Add(id, index, content, nil)
	if err := sender.Send(context.Background(), peer, id, index, contract.NewMemorySource(content), nil); err != nil {
		t.Fatalf("Send: %v", err)
	}
	f.WaitFinished(t)
	if err := f.FinishErr(); err != nil {
		t.Fatalf("Finish(%v)", err)
	}
	if !bytes.Equal(f.Data(), content) {
		t.Fatalf("received %d bytes differing from the %d sent", len(f.Data()), len(content))
	}
}

func TestLargeFileIsStripedOverSeveralConnections(t *testing.T) {
	cfg := udp.Config{Stripes: 4, StripeMinSize: 16 << 20}
	sender, receiver, peer, recv := stripePair(t, cfg, cfg, false)
	// 5 chunks and a bit: stripes 0 and 1 carry two chunks, 2 and 3 one
	// (and the short last one goes on stripe 1).
	sendAndCheck(t, sender, peer, recv, 0, randomBytes(t, 5*domain.HashChunkSize+12345))
	if sent, _ := udp.StripedStreams(sender); sent != 1 {
		t.Fatalf("%d striped sends, want 1", sent)
	}
	if _, got := udp.StripedStreams(receiver); got != 1 {
		t.Fatalf("%d striped receives, want 1", got)
	}
	// Below StripeMinSize: one stream, version 2.
	sendAndCheck(t, sender, peer, recv, 1, randomBytes(t, 3*domain.HashChunkSize))
	if sent, got := udp.StripedStreams(sender); sent != 1 || got != 0 {
		t.Fatalf("a small file was striped: sent %d, received %d", sent, got)
	}
}

func TestStripingReceiverGrantsAtMostItsStripes(t *testing.T) {
	sender, receiver, peer, recv := stripePair(t, udp.Config{Stripes: 4, StripeMinSize: 1}, udp.Config{Stripes: 1}, false)
	sendAndCheck(t, sender, peer, recv, 0, randomBytes(t, 3*domain.HashChunkSize))
	if sent, _ := udp.StripedStreams(sender); sent != 0 {
		t.Fatalf("the sender striped %d files to a receiver granting 1 stripe", sent)
	}
	if _, got := udp.StripedStreams(receiver); got != 0 {
		t.Fatalf("%d striped receives, want 0", got)
	}
}

// A receiver that speaks only stream version 2 answers the striped
// REQUEST UNSUPPORTED; the sender sends the file as version 2 at once, and
// the next one as version 2 straight away.
func TestStripedSenderFallsBackForAnOlderReceiver(t *testing.T) {
	cfg := udp.Config{Stripes: 4, StripeMinSize: 1}
	sender, _, peer, recv := stripePair(t, cfg, cfg, true)
	for i := range 2 {
		sendAndCheck(t, sender, peer, recv, i, randomBytes(t, 2*domain.HashChunkSize+i))
	}
	if sent, _ := udp.StripedStreams(sender); sent != 0 {
		t.Fatalf("%d striped sends to an older receiver", sent)
	}
	if n := recv.Calls(); n != 2 {
		t.Fatalf("the receiver opened %d files, want 2", n)
	}
}

// Over a relay a file is never striped (every stripe would cross the same
// relay allocation): it goes as version 2 on the relayed connection.
func TestRelayedFileIsNotStriped(t *testing.T) {
	turnAddr, _ := udp.StartPionTURN(t)
	a, b, alice, bob := relayedPairWith(t, turnAddr, udp.Config{Stripes: 4, StripeMinSize: 1})
	recv := contract.NewRecordingReceiver(alice.Identity)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- b.Serve(ctx, recv) }()
	defer func() { cancel(); <-served }()
	bobPeer := domain.Peer{Identity: bob.Identity, Online: true, Endpoints: domain.Endpoints{File: []string{"127.0.0.1:9"}, NAT: domain.NATEndpointDependent}}
	sendAndCheck(t, a, bobPeer, recv, 0, randomBytes(t, 2*domain.HashChunkSize+1))
	if sent, _ := udp.StripedStreams(a); sent != 0 {
		t.Fatalf("%d files striped over the relay", sent)
	}
	if p := a.Path(bob.Identity); p.Kind != domain.PathRelayed {
		t.Fatalf("the file went over %v, want the relay", p)
	}
}
