package registry_test

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// regResp is the register answer as a second implementation would read it.
type regResp struct {
	Name  string `json:"name"`
	Token string `json:"token"`
	STUN  *struct {
		Ports    []int  `json:"ports"`
		Username string `json:"username"`
		Key      string `json:"key"`
	} `json:"stun"`
	Refused []struct {
		List     string `json:"list"`
		Index    int    `json:"index"`
		Endpoint string `json:"endpoint"`
		Reason   string `json:"reason"`
	} `json:"refused"`
}

func rawRegisterResp(t *testing.T, hc *http.Client, base string, id domain.LocalIdentity, eps domain.Endpoints) regResp {
	t.Helper()
	body := signedBody(t, hc, base, domain.ActionRegister, id.Name().String(), id, eps)
	code, b, _ := call(t, hc, "PUT", base+"/v1/users/"+id.Name().String()+"/presence", body, nil)
	if code != http.StatusOK {
		t.Fatalf("register: %d %s", code, b)
	}
	var r regResp
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// stunSocket is a client UDP socket on loopback.
func stunSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// bindingRequest builds a Binding request, authenticated when user != "".
func bindingRequest(t *testing.T, user string, key []byte) *stun.Message {
	t.Helper()
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	if user != "" {
		setters = append(setters, stun.NewUsername(user), stun.NewShortTermIntegrity(string(key)))
	}
	setters = append(setters, stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// exchange sends req to port and returns the first answer (the server
// answers in order, so the answer to a later request proves an earlier
// one was processed).
func exchange(t *testing.T, c *net.UDPConn, port int, req *stun.Message) *stun.Message {
	t.Helper()
	if _, err := c.WriteToUDP(req.Raw, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, c)
}

func readAnswer(t *testing.T, c *net.UDPConn) *stun.Message {
	t.Helper()
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no STUN answer: %v", err)
	}
	m := new(stun.Message)
	if err := stun.Decode(buf[:n], m); err != nil {
		t.Fatalf("bad STUN answer: %v", err)
	}
	if err := stun.Fingerprint.Check(m); err != nil {
		t.Fatalf("answer FINGERPRINT: %v", err)
	}
	return m
}

func mappedOf(t *testing.T, m *stun.Message) netip.AddrPort {
	t.Helper()
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err != nil {
		t.Fatalf("no XOR-MAPPED-ADDRESS: %v", err)
	}
	ip, _ := netip.AddrFromSlice(xa.IP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port))
}

func localAddrPort(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// A plain Binding request gets the mapped address, like any STUN server,
// on both ports, and the info route names the ports.
func TestSTUNPlainBinding(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	sp := ts.srv.STUNPorts()
	if len(sp) != 2 || sp[1] != sp[0]+1 {
		t.Fatalf("STUN ports %v, want two consecutive", sp)
	}
	c := stunSocket(t)
	for _, port := range sp {
		req := bindingRequest(t, "", nil)
		ans := exchange(t, c, port, req)
		if ans.Type != stun.BindingSuccess || ans.TransactionID != req.TransactionID {
			t.Fatalf("answer %v", ans)
		}
		if got := mappedOf(t, ans); got != localAddrPort(c) {
			t.Fatalf("mapped %v, want %v", got, localAddrPort(c))
		}
		if ans.Contains(stun.AttrMessageIntegrity) {
			t.Fatal("plain answer carries MESSAGE-INTEGRITY")
		}
	}
	hc, base := rawClient(ts)
	code, b, _ := call(t, hc, "GET", base+"/v1/info", nil, nil)
	var info struct {
		Proof string `json:"proof"`
		STUN  struct {
			Ports []int `json:"ports"`
		} `json:"stun"`
		Relay bool `json:"relay"`
	}
	if code != 200 || json.Unmarshal(b, &info) != nil || info.Proof != domain.ProofTagV2 || !slices.Equal(info.STUN.Ports, sp) || info.Relay {
		t.Fatalf("info: %d %s", code, b)
	}
	// A datagram that is not STUN is dropped, and counted.
	if _, err := c.WriteToUDP([]byte("GET / HTTP/1.0\r\n\r\n"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sp[0]}); err != nil {
		t.Fatal(err)
	}
	exchange(t, c, sp[0], bindingRequest(t, "", nil)) // answered after the junk was handled
	_, m, _ := call(t, hc, "GET", base+"/metrics", nil, nil)
	for _, want := range []string{`chatx_registry_stun_requests_total{result="plain"} 3`, `chatx_registry_stun_requests_total{result="dropped"} 1`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// An authenticated request is answered with MESSAGE-INTEGRITY under the
// session's key and recorded: the reflexive address shows in lookups and
// as a live presence event, with the NAT mapping. A request with a wrong
// key is neither answered nor recorded.
func TestSTUNAuthenticatedBindingRecorded(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	ctx := t.Context()
	watcher := newClient(t, ts.url, "")
	events, err := watcher.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alice := newClient(t, ts.url, "")
	if err := alice.Register(ctx, newLocal(t, "alice"), domain.Endpoints{File: []string{"10.1.2.3:4100"}}); err != nil {
		t.Fatal(err)
	}
	b, err := alice.STUN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Servers) != 2 || len(b.Key) != 32 || b.Username == "" {
		t.Fatalf("binding %+v", b)
	}
	ports2 := ts.srv.STUNPorts()
	c := stunSocket(t)

	// Wrong key first, then a plain request on the same port: the first
	// answer read must be the plain one, and nothing is recorded.
	bad := bindingRequest(t, b.Username, make([]byte, 32))
	if _, err := c.WriteToUDP(bad.Raw, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ports2[0]}); err != nil {
		t.Fatal(err)
	}
	plain := bindingRequest(t, "", nil)
	if ans := exchange(t, c, ports2[0], plain); ans.TransactionID != plain.TransactionID {
		t.Fatal("the request with a wrong key was answered")
	}
	p, err := watcher.Lookup(ctx, domain.MustUsername("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Endpoints.File) != 1 || p.Endpoints.NAT != domain.NATUnknown {
		t.Fatalf("a wrong key was recorded: %+v", p.Endpoints)
	}

	// Right key on both ports.
	for _, port := range ports2 {
		req := bindingRequest(t, b.Username, b.Key)
		ans := exchange(t, c, port, req)
		if ans.TransactionID != req.TransactionID {
			t.Fatal("answer to another request")
		}
		if err := stun.NewShortTermIntegrity(string(b.Key)).Check(ans); err != nil {
			t.Fatalf("answer MESSAGE-INTEGRITY: %v", err)
		}
	}
	srflx := localAddrPort(c).String()
	waitFor(t, 10*time.Second, "srflx presence event", func() bool {
		for {
			select {
			case e := <-events:
				if e.Kind == ports.PeerChanged && e.Peer.Name().String() == "alice" && e.Peer.Endpoints.NAT == domain.NATEndpointIndependent {
					return slices.Contains(e.Peer.Endpoints.File, srflx)
				}
			default:
				return false
			}
		}
	})
	p, err = watcher.Lookup(ctx, domain.MustUsername("alice"))
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.Candidate{
		{Type: domain.CandidateHost, Net: "udp", Addr: "10.1.2.3:4100", Scope: domain.ScopePrivate},
		{Type: domain.CandidateSrflx, Net: "udp", Addr: srflx, Scope: domain.ScopeLoopback},
	}
	if !slices.Equal(p.Endpoints.File, []string{"10.1.2.3:4100", srflx}) || !slices.Equal(p.Endpoints.Candidates, want) || p.Endpoints.NAT != domain.NATEndpointIndependent {
		t.Fatalf("lookup after STUN: %+v", p.Endpoints)
	}

	// A new mapping (the NAT re-bound: a new socket) replaces the old one.
	c2 := stunSocket(t)
	for _, port := range ports2 {
		exchange(t, c2, port, bindingRequest(t, b.Username, b.Key))
	}
	p, err = watcher.Lookup(ctx, domain.MustUsername("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Endpoints.File, []string{"10.1.2.3:4100", localAddrPort(c2).String()}) {
		t.Fatalf("after re-binding: %+v", p.Endpoints)
	}

	// Re-registering gives a new binding; the old one no longer counts.
	if err := alice.Register(ctx, newLocal(t, "alice2"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	b2, err := alice.STUN(ctx)
	if err != nil || b2.Username == b.Username {
		t.Fatalf("binding after re-registering: %+v %v", b2, err)
	}
}

// The memory-free end of the STUN tie-in: a client advertising the very
// address STUN sees has no NAT.
func TestSTUNNoNAT(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	ctx := t.Context()
	c := stunSocket(t)
	alice := newClient(t, ts.url, "")
	if err := alice.Register(ctx, newLocal(t, "alice"), domain.Endpoints{File: []string{localAddrPort(c).String()}}); err != nil {
		t.Fatal(err)
	}
	b, err := alice.STUN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range ts.srv.STUNPorts() {
		exchange(t, c, port, bindingRequest(t, b.Username, b.Key))
	}
	p, err := alice.Lookup(ctx, domain.MustUsername("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Endpoints.NAT != domain.NATNone || len(p.Endpoints.File) != 1 {
		t.Fatalf("endpoints %+v, want NAT none and no extra srflx", p.Endpoints)
	}
}

// The register answer lists what the address policy refused; loopback
// from a loopback registration is kept.
func TestRegisterListsRefusedEndpoints(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	hc, base := rawClient(ts)
	id := newLocal(t, "alice")
	r := rawRegisterResp(t, hc, base, id, domain.Endpoints{
		Link: []string{"127.0.0.1:7000", "example.com:443"},
		File: []string{"10.0.0.1:80", "198.51.100.7:4100"},
	})
	if r.STUN == nil || len(r.STUN.Ports) != 2 || r.STUN.Username == "" {
		t.Fatalf("register answer without STUN: %+v", r)
	}
	got := fmt.Sprint(r.Refused)
	if want := "[{link 1 example.com:443 dns_name} {file 1 198.51.100.7:4100 unverified_public}]"; got != want {
		t.Fatalf("refused %s, want %s", got, want)
	}
	p, err := ts.svc.Lookup(t.Context(), id.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Endpoints.Link, []string{"127.0.0.1:7000"}) || !slices.Equal(p.Endpoints.File, []string{"10.0.0.1:80"}) {
		t.Fatalf("published %+v", p.Endpoints)
	}
}

// A request signed in the v1 layout gets its own error code.
func TestV1ProofRefusedWithCode(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	hc, base := rawClient(ts)
	id := newLocal(t, "alice")
	code, b, _ := call(t, hc, "POST", base+"/v1/challenges", nil, nil)
	var cr struct{ Challenge string }
	if code != 201 || json.Unmarshal(b, &cr) != nil {
		t.Fatalf("challenge %d %s", code, b)
	}
	ch, _ := base64.StdEncoding.DecodeString(cr.Challenge)
	p := domain.RegistryProof{Action: domain.ActionRegister, Name: id.Name(), Key: id.PublicKey(), Challenge: ch}
	body, _ := json.Marshal(map[string]any{
		"key": base64.StdEncoding.EncodeToString(id.PublicKey()), "challenge": cr.Challenge,
		"endpoints": map[string][]string{"link": {}, "file": {}},
		"signature": base64.StdEncoding.EncodeToString(id.Sign(p.SigningBytesV1())),
	})
	code, b, _ = call(t, hc, "PUT", base+"/v1/users/alice/presence", body, nil)
	if code != 400 || errCode(t, b) != "outdated_proof" {
		t.Fatalf("v1 proof: %d %s", code, b)
	}
}

// readUntil reads SSE lines until one has the prefix, returning what it saw.
func readUntil(t *testing.T, r *bufio.Reader, prefix string) []string {
	t.Helper()
	var seen []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before %q: %v (saw %q)", prefix, err, seen)
		}
		seen = append(seen, line)
		if strings.HasPrefix(line, prefix) {
			return seen
		}
	}
}

// Signals reach the recipient's session stream, and only it; an offline
// recipient is 404 peer_offline; size and rate are bounded.
func TestSignals(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	ctx := t.Context()
	hc, base := rawClient(ts)

	// An anonymous stream, to show signals never reach it. It stays open
	// for the whole test, longer than hc's 10 s timeout under a loaded
	// -race run: it is bounded by a context of its own instead.
	streamCtx, cancelStream := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelStream()
	req, _ := http.NewRequestWithContext(streamCtx, "GET", base+"/v1/events", nil)
	resp, err := (&http.Client{Transport: hc.Transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	anon := bufio.NewReader(resp.Body)
	readUntil(t, anon, "event: synced")

	alice, bob := newClient(t, ts.url, ""), newClient(t, ts.url, "")
	aliceID, bobID := newLocal(t, "alice"), newLocal(t, "bob")
	bobSignals, err := bob.Signals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bobWatch, err := bob.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Register(ctx, aliceID, domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	if err := bob.Register(ctx, bobID, domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, bobWatch, "bob", true, 10*time.Second) // bob's session stream is up
	bobPeer := domain.Peer{Identity: bobID.Identity}
	// The stream is the session's once the client reconnected it with the
	// token; until then the registry answers peer_offline. Signals are best
	// effort (one queued to a stream being replaced is lost), so the probe
	// is sent again until one arrives, as the QUIC transport does.
	deadline := time.Now().Add(20 * time.Second)
	for got := false; !got; {
		if time.Now().After(deadline) {
			t.Fatal("bob got no signal")
		}
		if err := alice.Signal(ctx, bobPeer.Identity, []byte("probe")); err != nil && !errors.Is(err, domain.ErrPeerOffline) {
			t.Fatalf("signal: %v", err)
		}
		select {
		case s := <-bobSignals:
			if !s.From.SameKey(aliceID.PublicKey()) || s.From.Name().String() != "alice" || string(s.Payload) != "probe" {
				t.Fatalf("signal %+v", s)
			}
			got = true
		case <-time.After(500 * time.Millisecond):
		}
	}
	for drained := false; !drained; { // later copies of the probe
		select {
		case <-bobSignals:
		case <-time.After(200 * time.Millisecond):
			drained = true
		}
	}

	// Offline recipient.
	carol := newLocal(t, "carol")
	if err := alice.Signal(ctx, carol.Identity, []byte("x")); !errors.Is(err, domain.ErrPeerOffline) {
		t.Fatalf("signal to an offline peer: %v", err)
	}
	// Registered but without a session stream.
	rawRegisterResp(t, hc, base, carol, domain.Endpoints{})
	if err := alice.Signal(ctx, carol.Identity, []byte("x")); !errors.Is(err, domain.ErrPeerOffline) {
		t.Fatalf("signal to a peer with no stream: %v", err)
	}

	// The anonymous stream saw carol come online but no signal.
	for _, l := range readUntil(t, anon, `data: {"name":"carol"`) {
		if strings.HasPrefix(l, "event: signal") {
			t.Fatal("an anonymous stream got a signal")
		}
	}

	// Size: 4096 bytes pass, 4097 are refused.
	r := rawRegisterResp(t, hc, base, newLocal(t, "dave"), domain.Endpoints{})
	hdr := map[string]string{"Authorization": "Bearer " + r.Token}
	big, _ := json.Marshal(map[string]string{"to": "bob", "payload": base64.StdEncoding.EncodeToString(make([]byte, ports.MaxSignalSize+1))})
	code, b, _ := call(t, hc, "POST", base+"/v1/signals?name=dave", big, hdr)
	if code != 413 || errCode(t, b) != "too_large" {
		t.Fatalf("oversized signal: %d %s", code, b)
	}
	max, _ := json.Marshal(map[string]string{"to": "bob", "payload": base64.StdEncoding.EncodeToString(make([]byte, ports.MaxSignalSize))})
	if code, b, _ := call(t, hc, "POST", base+"/v1/signals?name=dave", max, hdr); code != 202 {
		t.Fatalf("signal of %d bytes: %d %s", ports.MaxSignalSize, code, b)
	}
	if code, b, _ := call(t, hc, "POST", base+"/v1/signals?name=dave", max, nil); code != 401 || errCode(t, b) != "session_invalid" {
		t.Fatalf("signal without a session: %d %s", code, b)
	}
}

// Signals are rate-limited per sending session, before anything else.
func TestSignalRateLimit(t *testing.T) {
	t.Parallel()
	cfg := fastConfig(t.TempDir(), "")
	cfg.SignalRate = registry.Rate{PerSecond: 0.001, Burst: 2}
	ts := startServer(t, cfg, app.RegistryOptions{})
	hc, base := rawClient(ts)
	signal := func(token string) (int, []byte, http.Header) {
		body, _ := json.Marshal(map[string]string{"to": "nobody", "payload": "eA=="})
		return call(t, hc, "POST", base+"/v1/signals?name=dave", body, map[string]string{"Authorization": "Bearer " + token})
	}
	r := rawRegisterResp(t, hc, base, newLocal(t, "dave"), domain.Endpoints{})
	for i := range 2 {
		if code, b, _ := signal(r.Token); code != 404 || errCode(t, b) != "peer_offline" {
			t.Fatalf("signal %d: %d %s", i, code, b)
		}
	}
	code, b, h := signal(r.Token)
	if code != 429 || errCode(t, b) != "rate_limited" || h.Get("Retry-After") == "" {
		t.Fatalf("signal over the rate: %d %s", code, b)
	}
	// Another session has its own budget.
	r2 := rawRegisterResp(t, hc, base, newLocal(t, "erin"), domain.Endpoints{})
	body, _ := json.Marshal(map[string]string{"to": "nobody", "payload": "eA=="})
	if code, b, _ := call(t, hc, "POST", base+"/v1/signals?name=erin", body, map[string]string{"Authorization": "Bearer " + r2.Token}); code != 404 {
		t.Fatalf("another session's signal: %d %s", code, b)
	}
}

// Relay credentials follow the TURN REST convention and verify with the
// shared secret; without relays the client says ErrNoRendezvous.
func TestRelayCredentials(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cret-shared-with-coturn")
	cfg := fastConfig(t.TempDir(), "")
	cfg.TURN = []registry.TURNServer{{URLs: []string{"turn:relay.example:3478?transport=udp", "turn:relay.example:3478?transport=tcp"}, Secret: secret, TTL: 5 * time.Minute}}
	ts := startServer(t, cfg, app.RegistryOptions{})
	ctx := t.Context()
	alice := newClient(t, ts.url, "")
	if _, err := alice.Relays(ctx); !errors.Is(err, ports.ErrNotRegistered) {
		t.Fatalf("relays before registering: %v", err)
	}
	if err := alice.Register(ctx, newLocal(t, "alice"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	list, err := alice.Relays(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("relays %+v %v", list, err)
	}
	for _, r := range list {
		exp, name, ok := strings.Cut(r.Username, ":")
		sec, err := strconv.ParseInt(exp, 10, 64)
		if !ok || err != nil || name != "alice" {
			t.Fatalf("username %q", r.Username)
		}
		mac := hmac.New(sha1.New, secret)
		mac.Write([]byte(r.Username))
		if r.Password != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			t.Fatal("password is not base64(HMAC-SHA1(secret, username))")
		}
		if !r.Expires.Equal(time.Unix(sec, 0)) || r.Expires.Before(before.Add(5*time.Minute-2*time.Second)) || r.Expires.After(time.Now().Add(5*time.Minute)) {
			t.Fatalf("expires %v (username %q)", r.Expires, r.Username)
		}
	}
	again, err := alice.Relays(ctx)
	if err != nil || !slices.Equal(again, list) {
		t.Fatalf("relays not cached: %+v %v", again, err)
	}
	// Credentials expire: the expiry is in the signed username, so a relay
	// checking it refuses them after TTL.
	user, pass, exp := registry.TURNCredentials(secret, "alice", time.Unix(1000, 0), time.Minute)
	if user != "1060:alice" || !exp.Equal(time.Unix(1060, 0)) || pass == "" {
		t.Fatalf("TURNCredentials: %q %q %v", user, pass, exp)
	}

	// No relay configured.
	ts2 := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	bob := newClient(t, ts2.url, "")
	if err := bob.Register(ctx, newLocal(t, "bob"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Relays(ctx); !errors.Is(err, ports.ErrNoRendezvous) {
		t.Fatalf("relays without a relay: %v", err)
	}
	hc, base := rawClient(ts2)
	code, b, _ := call(t, hc, "GET", base+"/v1/relays?name=bob", nil, map[string]string{"Authorization": "Bearer nope"})
	if code != 401 || errCode(t, b) != "session_invalid" {
		t.Fatalf("relays with a bad token: %d %s", code, b)
	}
}

// STUN is off with NoSTUN: the client says ErrNoRendezvous.
func TestSTUNOff(t *testing.T) {
	t.Parallel()
	cfg := fastConfig(t.TempDir(), "")
	cfg.NoSTUN = true
	ts := startServer(t, cfg, app.RegistryOptions{})
	c := newClient(t, ts.url, "")
	if _, err := c.STUN(t.Context()); !errors.Is(err, ports.ErrNotRegistered) {
		t.Fatalf("STUN before registering: %v", err)
	}
	if err := c.Register(t.Context(), newLocal(t, "alice"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.STUN(t.Context()); !errors.Is(err, ports.ErrNoRendezvous) {
		t.Fatalf("STUN with the server off: %v", err)
	}
	if ts.srv.STUNPorts() != nil {
		t.Fatal("STUN ports with STUN off")
	}
}
