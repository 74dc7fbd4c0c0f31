package udp

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/chatx/chatx/internal/pionlog"
	"github.com/chatx/chatx/ports"
)

// TestAllocationEndsWhenTheRestartedServerIsSilent is what `make soak`
// (seed 5) found: the registry, whose embedded relay keeps allocations in
// memory, was killed and restarted on its address; pion's server drops,
// unanswered, every Refresh and CreatePermission for an allocation it does
// not know, and the client took the silence for a passing outage and kept
// its dead allocation for good — a peer behind a symmetric NAT was never
// reached again. The allocation must close itself (Permit fails with
// net.ErrClosed), so that the transport allocates anew.
func TestAllocationEndsWhenTheRestartedServerIsSilent(t *testing.T) {
	old := turnPermitRefresh
	turnPermitRefresh = 100 * time.Millisecond
	t.Cleanup(func() { turnPermitRefresh = old })
	udpConn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := udpConn.LocalAddr().String()
	first := servePionTURN(t, udpConn)
	alloc, err := allocateRelay(context.Background(), []ports.RelayServer{relayServer("turn:"+addr+"?transport=udp", "ivy", time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.Close()
	peer := listenLoopback(t, "127.0.0.1")
	if err := alloc.Permit(peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}

	// The restart: the same address, no allocations.
	_ = first.Close()
	again, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	second := servePionTURN(t, again)
	defer second.Close()

	deadline := time.Now().Add(60 * time.Second)
	for {
		err := alloc.Permit(peer.LocalAddr())
		if errors.Is(err, net.ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the allocation still takes permissions a minute after its server forgot it (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = alloc.PacketConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := alloc.PacketConn().ReadFrom(make([]byte, 1500)); err == nil || isTimeout(err) {
		t.Fatalf("ReadFrom on a lost allocation: %v, want an error other than a timeout", err)
	}
}

// servePionTURN runs a pion TURN server (TURN REST credentials) on conn.
func servePionTURN(t *testing.T, conn net.PacketConn) *turn.Server {
	t.Helper()
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         "pion.test",
		LoggerFactory: pionlog.Factory(nil),
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(testTURNSecret, nil),
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: conn, RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
			RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}
