package relay_test

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatx/chatx/adapters/relay"
)

func TestAllocateWithValidCredentials(t *testing.T) {
	s := startRelay(t, relay.Config{Ports: relay.PortRange{Min: 40000, Max: 40100}})
	addr := s.Addr().String()
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			a := mustAllocate(t, addr, transport, credsFor(s.Secret(), "alice", time.Now().Add(time.Hour)))
			ra := a.conn.LocalAddr().(*net.UDPAddr)
			if !ra.IP.Equal(net.IPv4(127, 0, 0, 1)) || ra.Port < 40000 || ra.Port > 40100 {
				t.Fatalf("relayed address %v, want 127.0.0.1 within 40000-40100", ra)
			}
			peer := listenUDP(t, "127.0.0.1")
			stranger := listenUDP(t, "127.0.0.2")
			if err := a.client.CreatePermission(peer.LocalAddr()); err != nil {
				t.Fatalf("CreatePermission: %v", err)
			}
			// Loopback delivers in order into the relayed socket: the
			// stranger's datagram would arrive first were it relayed.
			if _, err := stranger.WriteTo([]byte("stranger"), ra); err != nil {
				t.Fatal(err)
			}
			if _, err := peer.WriteTo([]byte("hello client"), ra); err != nil {
				t.Fatal(err)
			}
			if got, from := read(t, a.conn); string(got) != "hello client" || from.String() != peer.LocalAddr().String() {
				t.Fatalf("client read %q from %v", got, from)
			}
			if _, err := a.conn.WriteTo([]byte("hello peer"), peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			if got, from := read(t, peer); string(got) != "hello peer" || from.String() != ra.String() {
				t.Fatalf("peer read %q from %v", got, from)
			}
			if n := s.Allocations(); n < 1 {
				t.Errorf("Allocations() = %d with one live", n)
			}
		})
	}
}

func TestRefusesBadCredentials(t *testing.T) {
	now := time.Now()
	s := startRelay(t, relay.Config{})
	other := startRelay(t, relay.Config{}) // another secret
	addr := s.Addr().String()
	good := credsFor(s.Secret(), "alice", now.Add(time.Hour))
	cases := map[string]creds{
		"wrong password":     {good.user, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		"expired username":   credsFor(s.Secret(), "alice", now.Add(-time.Second)),
		"other secret":       credsFor(other.Secret(), "alice", now.Add(time.Hour)),
		"no expiry":          {"alice", "x"},
		"name changed":       {strings.Replace(good.user, "alice", "bob", 1), good.pass},
		"expiry pushed back": {strconv.FormatInt(now.Add(48*time.Hour).Unix(), 10) + ":alice", good.pass},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := allocate(t, addr, "udp", c)
			if err == nil {
				t.Fatal("allocation granted")
			}
			// pion answers a failed authentication 400 (coturn: 401).
			if code := turnCode(err); code != 400 && code != 401 {
				t.Fatalf("err = %v (code %d), want 400 or 401", err, code)
			}
		})
	}
	if n := s.Allocations(); n != 0 {
		t.Errorf("Allocations() = %d, want 0", n)
	}
	if n := metric(t, s, "chatx_relay_refused_total", "auth"); n != float64(len(cases)) {
		t.Errorf("auth refusals counted %v, want %d", n, len(cases))
	}
	mustAllocate(t, addr, "udp", good) // the same server does grant good ones
}

// TestExpiryBoundsNewAllocationsOnly: after the credentials expire, the
// client holding an allocation made with them keeps refreshing its
// permissions (a long relayed transfer is not cut), while the same
// credentials from another socket are refused.
func TestExpiryBoundsNewAllocationsOnly(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := startRelay(t, relay.WithClock(relay.Config{}, clock))
	c := credsFor(s.Secret(), "alice", now.Add(time.Minute))
	a := mustAllocate(t, s.Addr().String(), "udp", c)
	peer := listenUDP(t, "127.0.0.1")
	if err := a.client.CreatePermission(peer.LocalAddr()); err != nil {
		t.Fatalf("CreatePermission before expiry: %v", err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if err := a.client.CreatePermission(listenUDP(t, "127.0.0.3").LocalAddr()); err != nil {
		t.Fatalf("the owner's CreatePermission after expiry: %v", err)
	}
	if _, err := allocate(t, s.Addr().String(), "udp", c); err == nil {
		t.Fatal("a new allocation with expired credentials was granted")
	}
	// Once the allocation is gone, the credentials are worth nothing.
	if err := a.conn.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the allocation to be released", func() bool { return s.Allocations() == 0 })
	if _, err := a.client.Allocate(); err == nil {
		t.Fatal("the former owner allocated again with expired credentials")
	}
}

func TestUserQuota(t *testing.T) {
	s := startRelay(t, relay.Config{UserQuota: 2})
	addr := s.Addr().String()
	exp := time.Now().Add(time.Hour)
	alice := credsFor(s.Secret(), "alice", exp)
	first := mustAllocate(t, addr, "udp", alice)
	mustAllocate(t, addr, "tcp", alice)
	if _, err := allocate(t, addr, "udp", alice); turnCode(err) != 486 {
		t.Fatalf("third allocation: err = %v, want 486 Allocation Quota Reached", err)
	}
	// Fresh credentials for the same name do not buy more.
	if _, err := allocate(t, addr, "udp", credsFor(s.Secret(), "alice", exp.Add(time.Minute))); turnCode(err) != 486 {
		t.Fatalf("allocation with fresh credentials: err = %v, want 486", err)
	}
	mustAllocate(t, addr, "udp", credsFor(s.Secret(), "bob", exp)) // another user is not affected

	if err := first.conn.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the released allocation to be gone", func() bool { return s.Allocations() == 2 })
	mustAllocate(t, addr, "udp", alice)
}

func TestMaxAllocations(t *testing.T) {
	s := startRelay(t, relay.Config{MaxAllocations: 1})
	addr := s.Addr().String()
	exp := time.Now().Add(time.Hour)
	mustAllocate(t, addr, "udp", credsFor(s.Secret(), "alice", exp))
	if _, err := allocate(t, addr, "udp", credsFor(s.Secret(), "bob", exp)); turnCode(err) != 508 {
		t.Fatalf("allocation beyond the cap: err = %v, want 508 Insufficient Capacity", err)
	}
}

// TestTCPConnectionCaps: TURN-over-TCP connections, which anyone can open
// unauthenticated, are capped (the cap server keeps the 10-minute idle
// timeout, so a closed connection there was closed by the cap) and closed
// when silent.
func TestTCPConnectionCaps(t *testing.T) {
	dial := func(addr string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// closedByServer waits (bounded) for the server to close c.
	closedByServer := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}

	capped := startRelay(t, relay.Config{MaxTCPConns: 2})
	addr := capped.Addr().String()
	first := dial(addr)
	dial(addr)
	if !closedByServer(dial(addr)) {
		t.Fatal("a third TCP connection beyond the cap of 2 stayed open")
	}
	_ = first.Close() // frees a slot for a real client
	waitFor(t, "a TCP allocation once a slot is free", func() bool {
		_, err := allocate(t, addr, "tcp", credsFor(capped.Secret(), "alice", time.Now().Add(time.Hour)))
		return err == nil
	})

	idle := startRelay(t, relay.WithTCPIdle(relay.Config{}, 200*time.Millisecond))
	if !closedByServer(dial(idle.Addr().String())) {
		t.Fatal("a silent TCP connection was not closed")
	}
}

// TestPermissionsOnlyForUnicastPeers: no permission to multicast or
// unspecified addresses, and none to loopback when the relay is not itself
// on loopback (it would reach the relay host's own services).
func TestPermissionsOnlyForUnicastPeers(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	s := startRelay(t, relay.Config{})
	a := mustAllocate(t, s.Addr().String(), "udp", credsFor(s.Secret(), "alice", exp))
	// pion answers a refused permission with a bare error response.
	for i, ip := range []string{"224.0.0.1", "0.0.0.0", "255.255.255.255"} {
		if err := a.client.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ip), Port: 9}); err == nil {
			t.Errorf("permission for %s granted", ip)
		}
		if n := metric(t, s, "chatx_relay_refused_total", "permission"); n != float64(i+1) {
			t.Errorf("permission refusals counted %v, want %d", n, i+1)
		}
	}
	if err := a.client.CreatePermission(&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9}); err != nil {
		t.Errorf("permission for a loopback peer of a loopback relay: %v", err)
	}

	var denied relay.Prefixes
	if err := denied.Set("10.0.0.0/8, 127.0.0.2/32"); err != nil {
		t.Fatal(err)
	}
	d := startRelay(t, relay.Config{DeniedPeers: denied})
	c := mustAllocate(t, d.Addr().String(), "udp", credsFor(d.Secret(), "alice", exp))
	for _, ip := range []string{"10.1.2.3", "127.0.0.2"} {
		if err := c.client.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ip), Port: 9}); err == nil {
			t.Errorf("permission for denied %s granted", ip)
		}
	}
	if err := c.client.CreatePermission(&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9}); err != nil {
		t.Errorf("permission outside the denied networks: %v", err)
	}

	public := startRelay(t, relay.Config{RelayIP: "192.0.2.1"}) // as if on a public address
	b := mustAllocate(t, public.Addr().String(), "udp", credsFor(public.Secret(), "alice", exp))
	if ra := b.conn.LocalAddr().(*net.UDPAddr); !ra.IP.Equal(net.ParseIP("192.0.2.1")) {
		t.Fatalf("relayed address %v, want the configured relay IP", ra)
	}
	if err := b.client.CreatePermission(&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9}); err == nil {
		t.Error("loopback permission on a public relay granted")
	}
	if !public.OwnPort(&net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: public.Addr().(*net.UDPAddr).Port}) {
		t.Error("the relay would relay into its own TURN port")
	}
}

// TestRateCap sends a peer's datagrams one at a time through a relay whose
// clock stands still: exactly the burst passes, the rest is dropped; one
// second later one more burst passes.
func TestRateCap(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := startRelay(t, relay.WithClock(relay.Config{Rate: 800_000}, clock)) // 100 kB/s, burst 64 KiB
	a := mustAllocate(t, s.Addr().String(), "udp", credsFor(s.Secret(), "alice", now.Add(time.Hour)))
	peer := listenUDP(t, "127.0.0.1")
	if err := a.client.CreatePermission(peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	ra := a.conn.LocalAddr()
	const size = 1000
	send := func(i int) {
		t.Helper()
		before := s.PeerBytesSeen()
		d := bytes.Repeat([]byte{byte(i)}, size)
		if _, err := peer.WriteTo(d, ra); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the relay to read datagram "+strconv.Itoa(i), func() bool { return s.PeerBytesSeen() >= before+size })
	}
	for i := range 200 {
		send(i)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	send(255)

	const burst = (64 << 10) / size // 65 datagrams
	for i := range burst {
		got, _ := read(t, a.conn)
		if got[0] != byte(i) {
			t.Fatalf("datagram %d: got #%d", i, got[0])
		}
	}
	if got, _ := read(t, a.conn); got[0] != 255 {
		t.Fatalf("after the burst got #%d, want the datagram sent after the refill (#255): the cap let more through", got[0])
	}
	if n := metric(t, s, "chatx_relay_rate_dropped_bytes_total", ""); n != float64((200-burst)*size) {
		t.Errorf("dropped bytes = %v, want %d", n, (200-burst)*size)
	}
	if n := metric(t, s, "chatx_relay_bytes_total", "from_peer"); n != float64((burst+1)*size) {
		t.Errorf("relayed bytes from the peer = %v, want %d", n, (burst+1)*size)
	}
	if n := metric(t, s, "chatx_relay_allocations", ""); n != 1 {
		t.Errorf("allocations gauge = %v, want 1", n)
	}
}

// metric reads one of the server's metrics, by name and (if any) label
// value, through a Prometheus registry as a scrape would.
func metric(t *testing.T, s *relay.Server, name, label string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	b := relay.NewBucket(8_000_000, clock) // 1 MB/s, burst 250 kB
	if !b.Allow(250_000) || b.Allow(1) {
		t.Fatal("a full bucket holds exactly its burst")
	}
	now = now.Add(100 * time.Millisecond) // +100 kB
	if !b.Allow(100_000) || b.Allow(1) {
		t.Fatal("refill is rate × elapsed")
	}
	now = now.Add(time.Hour)
	if !b.Allow(250_000) || b.Allow(1) {
		t.Fatal("refill is capped at the burst")
	}
	small := relay.NewBucket(8_000, clock) // 1 kB/s: the burst floor is 64 KiB
	if !small.Allow(64<<10) || small.Allow(1) {
		t.Fatal("burst floor of 64 KiB")
	}
	unlimited := relay.NewBucket(relay.Unlimited, clock)
	for range 1000 {
		if !unlimited.Allow(1 << 20) {
			t.Fatal("unlimited bucket refused")
		}
	}
}

func TestURLsAndSecret(t *testing.T) {
	s := startRelay(t, relay.Config{})
	port := strconv.Itoa(s.Addr().(*net.UDPAddr).Port)
	want := []string{"turn:127.0.0.1:" + port + "?transport=udp", "turn:127.0.0.1:" + port + "?transport=tcp"}
	if got := s.URLs(""); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("URLs(\"\") = %q, want %q", got, want)
	}
	if got := s.URLs("relay.example"); got[0] != "turn:relay.example:"+port+"?transport=udp" {
		t.Errorf("URLs(host) = %q", got)
	}
	if len(s.Secret()) != 32 || bytes.Equal(s.Secret(), startRelay(t, relay.Config{}).Secret()) {
		t.Error("secret is not 32 random bytes per server")
	}
	var off *relay.Server
	if off.URLs("x") != nil || off.Secret() != nil || off.Close() != nil {
		t.Error("a disabled (nil) server offers something")
	}
	if _, _, err := relay.New(relay.Config{Listen: "127.0.0.1:0", Ports: relay.PortRange{Min: 9, Max: 3}}, nil); err == nil {
		t.Error("New accepted the port range 9-3")
	}
	if _, _, err := relay.New(relay.Config{Listen: "[::1]:0"}, nil); !errors.Is(err, relay.ErrIPv4Only) {
		t.Errorf("New on IPv6: err = %v, want ErrIPv4Only", err)
	}
	disabled, cleanup, err := relay.New(relay.Config{Disabled: true}, nil)
	cleanup()
	if disabled != nil || err != nil {
		t.Errorf("New(Disabled) = %v, %v; want nil, nil", disabled, err)
	}
}

func TestFlags(t *testing.T) {
	for in, want := range map[string]relay.Rate{
		"10M": 10_000_000, "512k": 512_000, "1.5G": 1_500_000_000, "64000": 64_000, "0": relay.Unlimited, "unlimited": relay.Unlimited,
	} {
		var r relay.Rate
		if err := r.Set(in); err != nil || r != want {
			t.Errorf("Rate.Set(%q) = %v, %v; want %v", in, r, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "-1M", "10T"} {
		var r relay.Rate
		if err := r.Set(bad); err == nil {
			t.Errorf("Rate.Set(%q) accepted", bad)
		}
	}
	if relay.DefaultRate.String() != "10M" {
		t.Errorf("DefaultRate.String() = %q", relay.DefaultRate.String())
	}
	var p relay.PortRange
	if err := p.Set("50000-50100"); err != nil || p != (relay.PortRange{Min: 50000, Max: 50100}) {
		t.Errorf("PortRange.Set = %v, %v", p, err)
	}
	for _, bad := range []string{"1", "0-10", "10-5", "1-70000", "a-b"} {
		if err := p.Set(bad); err == nil {
			t.Errorf("PortRange.Set(%q) accepted", bad)
		}
	}
}
