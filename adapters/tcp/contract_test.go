package tcp_test

import (
	"testing"

	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

func TestLinkContract(t *testing.T) {
	contract.MessageLink(t, func(t *testing.T) contract.LinkFactory {
		return func(t *testing.T, me domain.LocalIdentity, v ports.PeerVerifier) contract.LinkEnd {
			l, cleanup, err := tcp.NewLink(me, v, nil, tcp.Config{ListenAddr: "127.0.0.1:0"}, quietLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cleanup)
			return contract.LinkEnd{Me: me, Link: l, Close: cleanup}
		}
	})
}
