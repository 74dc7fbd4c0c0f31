package relay_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/internal/turnrest"
	"github.com/chatx/chatx/internal/turntest"
)

// startRelay runs the embedded server on 127.0.0.1 with cfg.
func startRelay(t testing.TB, cfg relay.Config) *relay.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, cleanup, err := relay.New(cfg, nil)
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	t.Cleanup(cleanup)
	return s
}

// creds are TURN REST credentials for name under secret.
type creds struct{ user, pass string }

func credsFor(secret []byte, name string, expires time.Time) creds {
	u, p := turnrest.Credentials(secret, name, expires)
	return creds{u, p}
}

// allocation is a pion client's allocation on a server, on its own socket.
type allocation struct {
	client *turn.Client
	conn   net.PacketConn // relayed
}

// allocate allocates over transport ("udp" or "tcp") on addr.
func allocate(t testing.TB, addr string, transport string, c creds) (*allocation, error) {
	t.Helper()
	var sock net.PacketConn
	switch transport {
	case "udp":
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		sock = u
	case "tcp":
		tc, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		sock = turn.NewSTUNConn(tc)
	}
	client, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: addr, Username: c.user, Password: c.pass, Conn: sock,
	})
	if err != nil {
		_ = sock.Close()
		t.Fatal(err)
	}
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); _ = sock.Close() })
	pc, err := client.Allocate()
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = pc.Close() })
	return &allocation{client: client, conn: pc}, nil
}

// mustAllocate allocates or fails the test.
func mustAllocate(t testing.TB, addr, transport string, c creds) *allocation {
	t.Helper()
	a, err := allocate(t, addr, transport, c)
	if err != nil {
		t.Fatalf("allocate over %s: %v", transport, err)
	}
	return a
}

// turnCode is the TURN error code of err (0 if none).
func turnCode(err error) int {
	var te stun.TurnError
	var tep *stun.TurnError
	switch {
	case errors.As(err, &tep):
		return int(tep.ErrorCodeAttr.Code)
	case errors.As(err, &te):
		return int(te.ErrorCodeAttr.Code)
	}
	return 0
}

func listenUDP(t testing.TB, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func read(t *testing.T, c net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read on %s: %v", c.LocalAddr(), err)
	}
	return buf[:n], from
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	turntest.WaitFor(t, what, cond)
}
