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
func newTransportWithTCPFiles(t *testing.T, me domain.LocalIdentity, v ports.PeerVerifier) *udp.Transport {
	t.Helper()
	for range 5 {
		tr, cleanup, err := udp.NewTransport(me, v, nil, udp.Config{ListenAddr: "127.0.0.1:0"}, testLogger())
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
		receiver := newTransportWithTCPFiles(t, bob, v)
		return contract.FileTransportEnds{
			Sender: tcpPath{sender}, SenderIdentity: alice.Identity,
			Receiver: receiver, ReceiverPeer: peerOf(bob.Identity, receiver),
			Path: domain.FilePathTCP,
		}
	})
}
