package udp_test

import (
	"context"
	"testing"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// tcpPath is a FileTransport whose Send rides the TCP file stream to the
// peer on loopback, so the file-transport contract runs over that path.
type tcpPath struct{ *udp.Transport }

func (p tcpPath) Send(ctx context.Context, to domain.Peer, id domain.TransferID, index int, src ports.FileSource, progress func(int64)) error {
	return p.SendTCP(ctx, to, "127.0.0.1", id, index, src, progress)
}

// The same contract as TestFileTransportContract — integrity, resume,
// refusals, cancel, a wrong key refused at the TLS handshake — over TCP +
// TLS 1.3.
// newTransportWithTCPFiles makes a transport on an ephemeral port whose
// TCP file listener is up: the TCP port of the number the kernel picked
// for UDP can be taken by another program on a shared machine, and then
// the transport (rightly) has none, so it tries a few ports.
func newTransportWithTCPFiles(t *testing.T, me domain.LocalIdentity, v ports.PeerVerifier, cfg udp.Config) *udp.Transport {
	t.Helper()
	cfg.ListenAddr = "127.0.0.1:0"
	for range 5 {
		tr, cleanup, err := udp.NewTransport(me, v, nil, cfg, testLogger())
		if err != nil {
			t.Fatalf("NewTransport: %v", err)
		}
		if tr.TCPFileAddr() != "" {
			t.Cleanup(cleanup)
			return tr
		}
		cleanup()
	}
	t.Fatal("the receiver has no TCP file listener on five ephemeral ports")
	return nil
}

func TestFileTransportContractOverTCP(t *testing.T) {
	contract.FileTransport(t, func(t *testing.T, v ports.PeerVerifier) contract.FileTransportEnds {
		alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
		sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
		receiver := newTransportWithTCPFiles(t, bob, v, udp.Config{})
		return contract.FileTransportEnds{
			Sender: tcpPath{sender}, SenderIdentity: alice.Identity,
			Receiver: receiver, ReceiverPeer: peerOf(bob.Identity, receiver),
			Path: domain.FilePathTCP,
		}
	})
}

// The same contract striped over TCP: every file of more than one 4 MiB
// chunk travels on the file's TLS connection and up to 3 TCP stripe
// connections (stream version 3).
func TestFileTransportContractStripedOverTCP(t *testing.T) {
	striped := udp.Config{Stripes: 4, StripeMinSize: 1}
	contract.FileTransport(t, func(t *testing.T, v ports.PeerVerifier) contract.FileTransportEnds {
		alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
		sender := newTransport(t, alice, contract.AcceptAll{}, striped)
		receiver := newTransportWithTCPFiles(t, bob, v, striped)
		return contract.FileTransportEnds{
			Sender: tcpPath{sender}, SenderIdentity: alice.Identity,
			Receiver: receiver, ReceiverPeer: peerOf(bob.Identity, receiver),
			Path: domain.FilePathTCP,
		}
	})
}

// tcpStripePair is stripePair with a receiver whose TCP file listener is
// up.
func tcpStripePair(t *testing.T, senderCfg, receiverCfg udp.Config, old bool, v ports.PeerVerifier) (sender, receiver *udp.Transport, peer domain.Peer, recv *contract.RecordingReceiver) {
	t.Helper()
	return stripePairOf(t, senderCfg, old, func(bob domain.LocalIdentity) *udp.Transport {
		return newTransportWithTCPFiles(t, bob, v, receiverCfg)
	})
}

func TestLargeFileIsStripedOverTCP(t *testing.T) {
	cfg := udp.Config{Stripes: 4, StripeMinSize: 16 << 20}
	sender, receiver, peer, recv := tcpStripePair(t, cfg, cfg, false, contract.AcceptAll{})
	sendAndCheck(t, tcpPath{sender}, peer, recv, 0, randomBytes(t, 5*domain.HashChunkSize+12345))
	if sent, got := udp.StripedStreams(sender); sent != 1 {
		t.Fatalf("%d striped sends, want 1", sent)
	} else if _, got = udp.StripedStreams(receiver); got != 1 {
		t.Fatalf("%d striped receives, want 1", got)
	}
	if p := recv.Path(); p != domain.FilePathTCP {
		t.Fatalf("the file rode %q, want tcp", p)
	}
	// Below StripeMinSize: one connection, version 2.
	sendAndCheck(t, tcpPath{sender}, peer, recv, 1, randomBytes(t, 3*domain.HashChunkSize))
	if sent, got := udp.StripedStreams(sender); sent != 1 || got != 0 {
		t.Fatalf("a small file was striped: sent %d, received %d", sent, got)
	}
}

// A receiver that speaks only stream version 2 answers the striped
// REQUESTs (5, then 3) UNSUPPORTED on its TCP file connections; the sender
// sends the file as version 2 on a new one at once, and the next file as
// version 2 straight away.
func TestStripedTCPSenderFallsBackForAnOlderReceiver(t *testing.T) {
	cfg := udp.Config{Stripes: 4, StripeMinSize: 1}
	var verified countingVerifier
	sender, _, peer, recv := tcpStripePair(t, cfg, cfg, true, &verified)
	for i := range 2 {
		sendAndCheck(t, tcpPath{sender}, peer, recv, i, randomBytes(t, 2*domain.HashChunkSize+i))
	}
	if sent, _ := udp.StripedStreams(sender); sent != 0 {
		t.Fatalf("%d striped sends to an older receiver", sent)
	}
	if n := recv.Calls(); n != 2 {
		t.Fatalf("the receiver opened %d files, want 2", n)
	}
	// One answered version 5 (BLAKE3, striped) UNSUPPORTED, one version 3,
	// then one per file.
	if n := verified.n.Load(); n != 4 {
		t.Fatalf("the receiver verified %d connections, want 4 TCP file connections (versions 5 and 3 answered UNSUPPORTED, then one per file)", n)
	}
}
