package udp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/chatx/chatx/internal/pionlog"
	"github.com/chatx/chatx/internal/turnrest"
	"github.com/chatx/chatx/internal/turntest"
	"github.com/chatx/chatx/ports"
)

const testTURNSecret = "turn-test-secret"

// startPionTURN runs a plain pion TURN server with the TURN REST
// convention on 127.0.0.1 (UDP and TCP on one port) and returns its
// address and a function counting its allocations. It stands in for the
// registry's embedded server, which this package must not import.
func startPionTURN(t *testing.T) (addr string, allocations func() int) {
	t.Helper()
	udpConn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := udpConn.LocalAddr().(*net.UDPAddr).Port
	tcpLn, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	gen := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"}
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:             "pion.test",
		LoggerFactory:     pionlog.Factory(nil),
		AuthHandler:       turn.LongTermTURNRESTAuthHandler(testTURNSecret, nil),
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: udpConn, RelayAddressGenerator: gen()}},
		ListenerConfigs:   []turn.ListenerConfig{{Listener: tcpLn, RelayAddressGenerator: gen()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return udpConn.LocalAddr().String(), srv.AllocationCount
}

func relayServer(url, name string, valid time.Duration) ports.RelayServer {
	exp := time.Now().Add(valid)
	user, pass := turnrest.Credentials([]byte(testTURNSecret), name, exp)
	return ports.RelayServer{URL: url, Username: user, Password: pass, Expires: exp}
}

func listenLoopback(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatalf("listen %s: %v", ip, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readWithin(t *testing.T, c net.PacketConn, d time.Duration) ([]byte, net.Addr) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read on %s: %v", c.LocalAddr(), err)
	}
	return buf[:n], from
}

// exchangeThroughRelay checks what a relay candidate must do: a permitted
// peer and the allocation exchange datagrams both ways, and a peer at an IP
// that was not permitted never gets a datagram through, even though it
// knows the relayed address.
func exchangeThroughRelay(t *testing.T, alloc relayAllocation) {
	t.Helper()
	relayAddr := alloc.RelayAddr().(*net.UDPAddr)
	if relayAddr.Port == 0 || relayAddr.IP.IsUnspecified() {
		t.Fatalf("relayed address %v", relayAddr)
	}
	pc := alloc.PacketConn()
	if pc.LocalAddr().String() != relayAddr.String() {
		t.Fatalf("PacketConn's LocalAddr %v, want the relayed address %v", pc.LocalAddr(), relayAddr)
	}
	peer := listenLoopback(t, "127.0.0.1")
	stranger := listenLoopback(t, "127.0.0.2") // another IP: permissions are per IP

	if err := alloc.Permit(peer.LocalAddr()); err != nil {
		t.Fatalf("Permit: %v", err)
	}
	for i := range 5 {
		// The stranger's datagram reaches the server's relay socket first
		// (loopback delivers in send order into the one socket); were it
		// relayed, it would arrive first.
		if _, err := stranger.WriteTo([]byte("stranger"), relayAddr); err != nil {
			t.Fatal(err)
		}
		want := []byte("from peer " + strconv.Itoa(i))
		if _, err := peer.WriteTo(want, relayAddr); err != nil {
			t.Fatal(err)
		}
		got, from := readWithin(t, pc, 5*time.Second)
		if !bytes.Equal(got, want) {
			t.Fatalf("relayed conn read %q, want %q (a datagram from a non-permitted peer got through?)", got, want)
		}
		if from.String() != peer.LocalAddr().String() {
			t.Fatalf("datagram from %v, want the peer %v", from, peer.LocalAddr())
		}
	}
	reply := []byte("back to the peer")
	if _, err := pc.WriteTo(reply, peer.LocalAddr()); err != nil {
		t.Fatalf("write through relay: %v", err)
	}
	got, from := readWithin(t, peer, 5*time.Second)
	if !bytes.Equal(got, reply) || from.String() != relayAddr.String() {
		t.Fatalf("peer read %q from %v, want %q from the relayed address %v", got, from, reply, relayAddr)
	}
}

func TestAllocateRelayUDPAndTCP(t *testing.T) {
	addr, allocations := startPionTURN(t)
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			srv := relayServer("turn:"+addr+"?transport="+transport, "alice", time.Hour)
			alloc, err := allocateRelay(context.Background(), []ports.RelayServer{srv}, nil)
			if err != nil {
				t.Fatalf("allocateRelay: %v", err)
			}
			exchangeThroughRelay(t, alloc)
			if err := alloc.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := alloc.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := alloc.PacketConn().WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); err == nil {
				t.Error("write after Close succeeded")
			}
			waitFor(t, "the server to release the allocation", func() bool { return allocations() == 0 })
		})
	}
}

// TestAllocateRelayOverTLS: turns: reaches a server over TLS on TCP, the
// path for a host whose UDP is blocked and whose middlebox inspects TCP.
func TestAllocateRelayOverTLS(t *testing.T) {
	cert, pool := turntest.SelfSigned(t, "localhost")
	tcpLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn := tls.NewListener(tcpLn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         "pion.test",
		LoggerFactory: pionlog.Factory(nil),
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(testTURNSecret, nil),
		ListenerConfigs: []turn.ListenerConfig{{Listener: tlsLn,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	old := turnTLSConfig
	turnTLSConfig = func(serverName string) *tls.Config {
		return &tls.Config{ServerName: serverName, RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	t.Cleanup(func() { turnTLSConfig = old })

	port := tcpLn.Addr().(*net.TCPAddr).Port
	// "localhost" is the name in the certificate; it resolves to 127.0.0.1.
	alloc, err := allocateRelay(context.Background(), []ports.RelayServer{relayServer("turns:localhost:"+strconv.Itoa(port), "erin", time.Hour)}, nil)
	if err != nil {
		t.Fatalf("allocateRelay over TLS: %v", err)
	}
	defer alloc.Close()
	exchangeThroughRelay(t, alloc)
}

// TestStrayDatagramsDoNotEndTheAllocation: garbage sent to the client's
// own TURN socket (anyone can) is dropped, and the allocation still works.
func TestStrayDatagramsDoNotEndTheAllocation(t *testing.T) {
	addr, _ := startPionTURN(t)
	alloc, err := allocateRelay(context.Background(), []ports.RelayServer{relayServer("turn:"+addr, "frank", time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.Close()
	own := alloc.(*turnAllocation).conn.LocalAddr().(*net.UDPAddr)
	own.IP = net.IPv4(127, 0, 0, 1)
	stray := listenLoopback(t, "127.0.0.1")
	for _, junk := range [][]byte{{0x00}, bytes.Repeat([]byte{0x40}, 40), []byte("not a TURN message at all")} {
		if _, err := stray.WriteTo(junk, own); err != nil {
			t.Fatal(err)
		}
	}
	exchangeThroughRelay(t, alloc)
}

// TestOversizeDatagramIsDropped: a datagram larger than the reader's
// buffer (quic-go reads into 1452 bytes) is dropped, not an error that
// would close the QUIC transport.
func TestOversizeDatagramIsDropped(t *testing.T) {
	addr, _ := startPionTURN(t)
	alloc, err := allocateRelay(context.Background(), []ports.RelayServer{relayServer("turn:"+addr, "gina", time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.Close()
	peer := listenLoopback(t, "127.0.0.1")
	if err := alloc.Permit(peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	pc := alloc.PacketConn()
	if _, err := peer.WriteTo(bytes.Repeat([]byte{'x'}, 1500), pc.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.WriteTo([]byte("small"), pc.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1452)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "small" {
		t.Fatalf("ReadFrom = %q, %v; want the small datagram after the oversize one was dropped", buf[:n], err)
	}
}

// TestLostAllocationClosesItself: against a server that checks the
// credentials' expiry on every request (pion's TURN REST handler, like
// coturn), the first permission refresh after the expiry is refused; the
// allocation then closes itself, so the transport sees it is gone.
func TestLostAllocationClosesItself(t *testing.T) {
	old := turnPermitRefresh
	turnPermitRefresh = 50 * time.Millisecond
	t.Cleanup(func() { turnPermitRefresh = old })
	addr, _ := startPionTURN(t)
	srv := relayServer("turn:"+addr, "hank", 2*time.Second)
	alloc, err := allocateRelay(context.Background(), []ports.RelayServer{srv}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.Close()
	peer := listenLoopback(t, "127.0.0.1")
	if err := alloc.Permit(peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the allocation to notice it is gone", func() bool {
		return errors.Is(alloc.Permit(peer.LocalAddr()), net.ErrClosed)
	})
	_ = alloc.PacketConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := alloc.PacketConn().ReadFrom(make([]byte, 1500)); err == nil || isTimeout(err) {
		t.Fatalf("ReadFrom on a lost allocation: %v, want an error other than a timeout", err)
	}
}

func TestAllocateRelayAgainstCoturn(t *testing.T) {
	ct := turntest.StartCoturn(t, testTURNSecret)
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			srv := relayServer("turn:"+ct.Addr+"?transport="+transport, "bob", time.Hour)
			alloc, err := allocateRelay(context.Background(), []ports.RelayServer{srv}, nil)
			if err != nil {
				t.Fatalf("allocateRelay against coturn: %v", err)
			}
			defer alloc.Close()
			exchangeThroughRelay(t, alloc)
		})
	}
}

// TestAllocateRelayTriesServersInOrder: bad credentials and expired ones
// are passed over, the next server is used, and the error of a run that
// found none names each server.
func TestAllocateRelayTriesServersInOrder(t *testing.T) {
	addr, _ := startPionTURN(t)
	wrong := relayServer("turn:"+addr, "mallory", time.Hour)
	wrong.Password = "not-the-password"
	expired := relayServer("turn:"+addr, "carol", -time.Minute)
	good := relayServer("turn:"+addr+"?transport=tcp", "carol", time.Hour)

	alloc, err := allocateRelay(context.Background(), []ports.RelayServer{wrong, expired, good}, nil)
	if err != nil {
		t.Fatalf("allocateRelay: %v", err)
	}
	_ = alloc.Close()

	_, err = allocateRelay(context.Background(), []ports.RelayServer{wrong, expired}, nil)
	if err == nil {
		t.Fatal("allocation with a wrong password and expired credentials succeeded")
	}
	for _, want := range []string{wrong.URL, "expired"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestAllocateRelayRacesPastASilentServer: a first server that never
// answers (UDP blocked, say) does not make the caller wait for its
// retransmissions (about 8 s): the next server starts after a stagger and
// wins well within the caller's 5-second budget.
func TestAllocateRelayRacesPastASilentServer(t *testing.T) {
	addr, allocations := startPionTURN(t)
	silent := listenLoopback(t, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	alloc, err := allocateRelay(ctx, []ports.RelayServer{
		relayServer("turn:"+silent.LocalAddr().String(), "ivy", time.Hour),
		relayServer("turn:"+addr+"?transport=tcp", "ivy", time.Hour),
	}, nil)
	if err != nil {
		t.Fatalf("allocateRelay: %v", err)
	}
	defer alloc.Close()
	if allocations() != 1 {
		t.Errorf("%d allocations on the answering server, want 1", allocations())
	}
	exchangeThroughRelay(t, alloc)
}

// TestAllocateRelayHonoursContext: a server that never answers does not
// hold the caller beyond its context.
func TestAllocateRelayHonoursContext(t *testing.T) {
	silent := listenLoopback(t, "127.0.0.1") // reads nothing, answers nothing
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	srv := relayServer("turn:"+silent.LocalAddr().String(), "dave", time.Hour)
	_, err := allocateRelay(ctx, []ports.RelayServer{srv}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestParseTURNURI(t *testing.T) {
	good := []struct {
		in        string
		hostPort  string
		transport string
		secure    bool
	}{
		{"turn:relay.example:3478", "relay.example:3478", "udp", false},
		{"turn:relay.example", "relay.example:3478", "udp", false},
		{"turn:203.0.113.7:3479?transport=tcp", "203.0.113.7:3479", "tcp", false},
		{"turn:[2001:db8::1]:3478?transport=UDP", "[2001:db8::1]:3478", "udp", false},
		{"turns:relay.example", "relay.example:5349", "tcp", true},
		{"turns:relay.example:443?transport=tcp", "relay.example:443", "tcp", true},
	}
	for _, c := range good {
		u, err := parseTURNURI(c.in)
		if err != nil {
			t.Errorf("parseTURNURI(%q): %v", c.in, err)
			continue
		}
		if u.hostPort != c.hostPort || u.transport != c.transport || u.secure != c.secure {
			t.Errorf("parseTURNURI(%q) = %+v", c.in, u)
		}
	}
	for _, bad := range []string{
		"", "stun:relay.example", "turn://relay.example", "turn:", "turn:relay.example:0",
		"turn:relay.example:99999", "turn:relay.example?transport=sctp", "turns:relay.example?transport=udp",
		"turn:relay.example?foo=bar", "turn:2001:db8::1", "turn:0[", "turn:a b", "turn:[relay]x:1",
	} {
		if _, err := parseTURNURI(bad); !errors.Is(err, errTURNURI) {
			t.Errorf("parseTURNURI(%q) err = %v, want errTURNURI", bad, err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	turntest.WaitFor(t, what, cond)
}

// FuzzParseTURNURI: TURN URIs come from the registry. Any URI that parses
// yields a host:port that splits again and a known transport.
func FuzzParseTURNURI(f *testing.F) {
	for _, s := range []string{"turn:relay.example:3478?transport=udp", "turns:[2001:db8::1]", "turn:%zz", "turn:a?transport=tcp&transport=udp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseTURNURI(raw)
		if err != nil {
			if !errors.Is(err, errTURNURI) {
				t.Fatalf("error %v is not errTURNURI", err)
			}
			return
		}
		if _, _, err := net.SplitHostPort(u.hostPort); err != nil {
			t.Fatalf("parseTURNURI(%q).hostPort = %q: %v", raw, u.hostPort, err)
		}
		if u.transport != "udp" && u.transport != "tcp" || u.secure && u.transport != "tcp" {
			t.Fatalf("parseTURNURI(%q) = %+v", raw, u)
		}
	})
}
