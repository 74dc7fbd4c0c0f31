package netlab_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/chatx/chatx/e2e/internal/netlab"
)

func listen(t *testing.T, h *netlab.Host, addr string) *net.UDPConn {
	t.Helper()
	c, err := h.ListenUDP(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends from c to dst and returns the source address dst saw.
func roundTrip(t *testing.T, c *net.UDPConn, dst *net.UDPConn, to netip.AddrPort) netip.AddrPort {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte("hello"), to); err != nil {
		t.Fatal(err)
	}
	_ = dst.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	_, from, err := dst.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("%v never arrived at %v: %v", c.LocalAddr(), to, err)
	}
	return from
}

// TestNATMapping checks the two NAT kinds the reachability matrix relies
// on: behind Cone one LAN socket shows the same WAN address and port to two
// servers, behind Symmetric a different port to each.
func TestNATMapping(t *testing.T) {
	lab := netlab.New(t)
	s1, s2 := lab.Public("stun1"), lab.Public("stun2")
	srv1, srv2 := listen(t, s1, ":3478"), listen(t, s2, ":3478")
	for _, kind := range []netlab.NAT{netlab.Cone, netlab.Symmetric} {
		home := lab.Home(string(kind[len(kind)-6:]), netlab.HomeOptions{NAT: kind})
		host := home.Host("h-" + kind.String())
		c := listen(t, host, ":40000")
		m1 := roundTrip(t, c, srv1, netip.AddrPortFrom(s1.IP, 3478))
		m2 := roundTrip(t, c, srv2, netip.AddrPortFrom(s2.IP, 3478))
		if m1.Addr() != home.WAN || m2.Addr() != home.WAN {
			t.Fatalf("%s: servers saw %v and %v, want the router's %v", kind, m1, m2, home.WAN)
		}
		if same := m1 == m2; same != (kind == netlab.Cone) {
			t.Errorf("%s: mapped %v towards one server and %v towards the other", kind, m1, m2)
		}
	}
}

// TestRouterDropsUnsolicitedInbound sends to a LAN socket's mapping before
// and after the LAN host opened it: only the later packet arrives (both take
// the same path, so the first would have arrived first had it passed).
func TestRouterDropsUnsolicitedInbound(t *testing.T) {
	lab := netlab.New(t)
	pub := lab.Server("pub", netip.MustParseAddr("198.51.100.20"))
	home := lab.Home("home", netlab.HomeOptions{NAT: netlab.Cone})
	host := home.Host("host")
	srv := listen(t, pub, ":5000")
	c := listen(t, host, ":40001")
	mapped := netip.AddrPortFrom(home.WAN, 40001) // cone keeps the port
	if _, err := srv.WriteToUDPAddrPort([]byte("unsolicited"), mapped); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, c, srv, netip.AddrPortFrom(pub.IP, 5000)); got != mapped {
		t.Fatalf("mapping is %v, want %v", got, mapped)
	}
	if _, err := srv.WriteToUDPAddrPort([]byte("answer"), mapped); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "answer" {
		t.Fatalf("LAN host received %q first: the router let an unsolicited packet in", buf[:n])
	}
	// The counters the matrix uses to tell paths apart saw the one packet
	// (33 bytes: IPv4 and UDP headers and "hello").
	if in, err := pub.InputBytes(); err != nil || in < 33 {
		t.Errorf("server counted %d input bytes (%v), want at least 33", in, err)
	}
	if out, err := home.WANOutBytes(); err != nil || out < 33 {
		t.Errorf("router counted %d bytes out (%v), want at least 33", out, err)
	}
}

// TestConeSimultaneousOpen is hole punching through two cone routers with
// one socket on each side: a's first packet to b's mapping is dropped by
// b's router (nothing asked for it), yet it leaves nothing there that
// makes b's router map b's later packet to a from another port; b's packet
// gets through a's router (a opened it), and then a's second one through
// b's. Both ends see the other's mapping with the LAN port kept.
func TestConeSimultaneousOpen(t *testing.T) {
	lab := netlab.New(t)
	homeA, homeB := lab.Home("a", netlab.HomeOptions{NAT: netlab.Cone}), lab.Home("b", netlab.HomeOptions{NAT: netlab.Cone})
	a, b := listen(t, homeA.Host("a"), ":40010"), listen(t, homeB.Host("b"), ":40011")
	mappedA, mappedB := netip.AddrPortFrom(homeA.WAN, 40010), netip.AddrPortFrom(homeB.WAN, 40011)

	dropped, err := homeB.WANInDroppedPackets()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteToUDPAddrPort([]byte("early"), mappedB); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := homeB.WANInDroppedPackets()
		if err != nil {
			t.Fatal(err)
		}
		if n > dropped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b's router never dropped a's unsolicited packet")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := roundTrip(t, b, a, mappedA); got != mappedB {
		t.Fatalf("a saw b's packet from %v, want b's mapping %v", got, mappedB)
	}
	if got := roundTrip(t, a, b, mappedB); got != mappedA {
		t.Fatalf("b saw a's packet from %v, want a's mapping %v", got, mappedA)
	}
}
