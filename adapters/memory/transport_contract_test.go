package memory_test

import (
	"testing"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

func TestLinkContract(t *testing.T) {
	contract.MessageLink(t, func(t *testing.T) contract.LinkFactory {
		n := memory.NewNetwork()
		return func(t *testing.T, me domain.LocalIdentity, v ports.PeerVerifier) contract.LinkEnd {
			h, cleanup, err := memory.NewHost(n, me, v)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cleanup)
			return contract.LinkEnd{Me: me, Link: h.Link(), Close: cleanup}
		}
	})
}

func TestFileTransportContract(t *testing.T) {
	contract.FileTransport(t, func(t *testing.T, v ports.PeerVerifier) contract.FileTransportEnds {
		n := memory.NewNetwork()
		a, cleanA, err := memory.NewHost(n, newLocal(t, "alice"), memory.AcceptAll)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cleanA)
		b, cleanB, err := memory.NewHost(n, newLocal(t, "bob"), v)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cleanB)
		return contract.FileTransportEnds{Sender: a.Files(), SenderIdentity: a.Identity().Identity, Receiver: b.Files(), ReceiverPeer: b.Peer()}
	})
}
