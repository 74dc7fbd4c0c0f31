package app_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

type regFixture struct {
	reg   *app.Registry
	clock *memory.Clock
}

func newRegFixture(t *testing.T, opts app.RegistryOptions) regFixture {
	t.Helper()
	clock := memory.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	reg, err := app.NewRegistry(memory.NewAccountStore(), memory.NewPresenceStore(), clock, opts)
	if err != nil {
		t.Fatal(err)
	}
	return regFixture{reg: reg, clock: clock}
}

func newLocal(t *testing.T, name string) domain.LocalIdentity {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := domain.NewLocalIdentity(domain.MustUsername(name), priv)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (f regFixture) proof(t *testing.T, me domain.LocalIdentity, action domain.RegistryAction, eps domain.Endpoints) (domain.RegistryProof, []byte) {
	t.Helper()
	c, err := f.reg.Challenge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := domain.RegistryProof{Action: action, Name: me.Name(), Key: me.PublicKey(), Challenge: c, Endpoints: eps}
	return p, p.Sign(me)
}

func (f regFixture) register(t *testing.T, me domain.LocalIdentity, eps domain.Endpoints, observed string) (ports.Session, error) {
	t.Helper()
	p, sig := f.proof(t, me, domain.ActionRegister, eps)
	return f.reg.Register(context.Background(), ports.RegisterRequest{Proof: p, Signature: sig, ObservedHost: observed})
}

func TestRegistryRegisterLookupEndpoints(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{})
	alice := newLocal(t, "alice")
	eps := domain.Endpoints{Link: []string{"192.168.1.5:7000"}, File: []string{"192.168.1.5:7001", "[::1]:7001"}}
	sess, err := f.register(t, alice, eps, "203.0.113.9")
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Token) < 43 || sess.ExpiresIn != app.DefaultSessionTTL {
		t.Fatalf("session %d-char token, ttl %v", len(sess.Token), sess.ExpiresIn)
	}
	peer, err := f.reg.Lookup(context.Background(), domain.MustUsername("ALICE"))
	if err != nil {
		t.Fatal(err)
	}
	if !peer.Online || !peer.Identity.SameKey(alice.PublicKey()) {
		t.Fatalf("lookup: %+v", peer)
	}
	// No "observed IP + advertised port" pairing (that is no NAT
	// mapping), and no loopback address from a remote registration.
	wantLink := []string{"192.168.1.5:7000"}
	wantFile := []string{"192.168.1.5:7001"}
	if !slices.Equal(peer.Endpoints.Link, wantLink) || !slices.Equal(peer.Endpoints.File, wantFile) {
		t.Fatalf("endpoints %+v, want link %v file %v", peer.Endpoints, wantLink, wantFile)
	}
	wantCands := []domain.Candidate{
		{Type: domain.CandidateHost, Net: "tcp", Addr: "192.168.1.5:7000", Scope: domain.ScopePrivate},
		{Type: domain.CandidateHost, Net: "udp", Addr: "192.168.1.5:7001", Scope: domain.ScopePrivate},
	}
	if !slices.Equal(peer.Endpoints.Candidates, wantCands) {
		t.Fatalf("candidates %+v, want %+v", peer.Endpoints.Candidates, wantCands)
	}
	wantRefused := []ports.RefusedEndpoint{{List: "file", Index: 1, Endpoint: "[::1]:7001", Reason: app.RefusedLoopback}}
	if !slices.Equal(sess.Refused, wantRefused) {
		t.Fatalf("refused %+v, want %+v", sess.Refused, wantRefused)
	}
	if _, err := f.reg.Lookup(context.Background(), domain.MustUsername("nobody")); !errors.Is(err, domain.ErrUnknownPeer) {
		t.Fatalf("lookup unknown: %v", err)
	}
}

func TestRegistryRefusesBadProofs(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{})
	ctx := context.Background()
	alice := newLocal(t, "alice")
	if _, err := f.register(t, alice, domain.Endpoints{}, ""); err != nil {
		t.Fatal(err)
	}
	mallory := newLocal(t, "аlice") // Cyrillic а

	tests := []struct {
		name string
		make func() ports.RegisterRequest
		want error
	}{
		{"another key for a bound look-alike name", func() ports.RegisterRequest {
			p, sig := f.proof(t, mallory, domain.ActionRegister, domain.Endpoints{})
			return ports.RegisterRequest{Proof: p, Signature: sig}
		}, domain.ErrNameTaken},
		{"signature by another key", func() ports.RegisterRequest {
			p, _ := f.proof(t, alice, domain.ActionRegister, domain.Endpoints{})
			return ports.RegisterRequest{Proof: p, Signature: p.Sign(mallory)}
		}, domain.ErrBadSignature},
		{"altered endpoints", func() ports.RegisterRequest {
			p, sig := f.proof(t, alice, domain.ActionRegister, domain.Endpoints{Link: []string{"10.0.0.1:1"}})
			p.Endpoints.Link = []string{"6.6.6.6:1"}
			return ports.RegisterRequest{Proof: p, Signature: sig}
		}, domain.ErrBadSignature},
		{"unregister proof used to register", func() ports.RegisterRequest {
			p, sig := f.proof(t, alice, domain.ActionUnregister, domain.Endpoints{})
			return ports.RegisterRequest{Proof: p, Signature: sig}
		}, domain.ErrBadSignature},
		{"unknown challenge", func() ports.RegisterRequest {
			p := domain.RegistryProof{Action: domain.ActionRegister, Name: alice.Name(), Key: alice.PublicKey(), Challenge: make([]byte, domain.ChallengeSize)}
			return ports.RegisterRequest{Proof: p, Signature: p.Sign(alice)}
		}, ports.ErrChallengeInvalid},
		{"too many endpoints", func() ports.RegisterRequest {
			eps := domain.Endpoints{Link: make([]string, app.MaxAdvertisedEndpoints+1)}
			for i := range eps.Link {
				eps.Link[i] = "h:1"
			}
			p, sig := f.proof(t, alice, domain.ActionRegister, eps)
			return ports.RegisterRequest{Proof: p, Signature: sig}
		}, domain.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.reg.Register(ctx, tt.make())
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRegistryReplayAndChallengeExpiry(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{ChallengeTTL: time.Minute})
	ctx := context.Background()
	alice := newLocal(t, "alice")
	p, sig := f.proof(t, alice, domain.ActionRegister, domain.Endpoints{})
	req := ports.RegisterRequest{Proof: p, Signature: sig}
	if _, err := f.reg.Register(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Register(ctx, req); !errors.Is(err, ports.ErrChallengeInvalid) {
		t.Fatalf("replay: %v", err)
	}
	p2, sig2 := f.proof(t, alice, domain.ActionRegister, domain.Endpoints{})
	f.clock.Advance(time.Minute)
	if _, err := f.reg.Register(ctx, ports.RegisterRequest{Proof: p2, Signature: sig2}); !errors.Is(err, ports.ErrChallengeInvalid) {
		t.Fatalf("expired challenge: %v", err)
	}
}

func TestRegistryChallengeCap(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{MaxChallenges: 3, ChallengeTTL: time.Second})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := f.reg.Challenge(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.reg.Challenge(ctx); !errors.Is(err, ports.ErrBusy) {
		t.Fatalf("4th challenge: %v", err)
	}
	f.clock.Advance(time.Second)
	if _, err := f.reg.Challenge(ctx); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestRegistrySessionsHeartbeatExpiryUnregister(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{SessionTTL: 20 * time.Second})
	ctx := context.Background()
	alice, bob := newLocal(t, "alice"), newLocal(t, "bob")
	sa, err := f.register(t, alice, domain.Endpoints{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.register(t, bob, domain.Endpoints{}, ""); err != nil {
		t.Fatal(err)
	}
	events, err := f.reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range 2 {
		ev := <-events
		got[ev.Peer.Name().String()] = ev.Peer.Online
	}
	if !got["alice"] || !got["bob"] {
		t.Fatalf("snapshot %v", got)
	}

	if err := f.reg.Heartbeat(ctx, alice.Name(), sa.Token+"x"); !errors.Is(err, ports.ErrSessionInvalid) {
		t.Fatalf("wrong token: %v", err)
	}
	f.clock.Advance(15 * time.Second)
	if err := f.reg.Heartbeat(ctx, alice.Name(), sa.Token); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10 * time.Second) // bob silent for 25 s, alice 10 s
	if err := f.reg.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	ev := <-events
	if ev.Peer.Name().String() != "bob" || ev.Peer.Online {
		t.Fatalf("expiry event %+v", ev.Peer)
	}
	online, _ := f.reg.Online(ctx)
	if len(online) != 1 || online[0].Name().String() != "alice" {
		t.Fatalf("online %v", online)
	}

	// Mallory cannot log alice out.
	mallory := newLocal(t, "mallory")
	p, _ := f.proof(t, alice, domain.ActionUnregister, domain.Endpoints{})
	p.Key = mallory.PublicKey()
	if err := f.reg.Unregister(ctx, p, p.Sign(mallory)); !errors.Is(err, domain.ErrNameTaken) {
		t.Fatalf("foreign unregister: %v", err)
	}
	p, sig := f.proof(t, alice, domain.ActionUnregister, domain.Endpoints{})
	if err := f.reg.Unregister(ctx, p, sig); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Peer.Name().String() != "alice" || ev.Peer.Online {
		t.Fatalf("unregister event %+v", ev.Peer)
	}
	if err := f.reg.Heartbeat(ctx, alice.Name(), sa.Token); !errors.Is(err, ports.ErrSessionInvalid) {
		t.Fatalf("heartbeat after unregister: %v", err)
	}
	peer, err := f.reg.Lookup(ctx, alice.Name())
	if err != nil || peer.Online || peer.LastSeen.IsZero() {
		t.Fatalf("lookup after unregister: %+v %v", peer, err)
	}
	st, err := f.reg.Stats(ctx)
	if err != nil || st.Registered != 2 || st.Online != 0 || st.Watchers != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
}

func TestRegistryDisconnectNeedsCurrentToken(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{})
	ctx := context.Background()
	alice := newLocal(t, "alice")
	old, err := f.register(t, alice, domain.Endpoints{}, "")
	if err != nil {
		t.Fatal(err)
	}
	cur, err := f.register(t, alice, domain.Endpoints{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.reg.Disconnect(ctx, alice.Name(), old.Token); !errors.Is(err, ports.ErrSessionInvalid) {
		t.Fatalf("old token: %v", err)
	}
	if p, _ := f.reg.Lookup(ctx, alice.Name()); !p.Online {
		t.Fatal("an old stream closing took the new session offline")
	}
	if err := f.reg.Disconnect(ctx, alice.Name(), cur.Token); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.reg.Lookup(ctx, alice.Name()); p.Online {
		t.Fatal("still online after disconnect")
	}
}

func TestRegistrySlowWatcherDropped(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{WatchBuffer: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := f.reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		name := "user" + string("abcdefghjkmnpqrstuwxyz"[i])
		if _, err := f.register(t, newLocal(t, name), domain.Endpoints{}, ""); err != nil {
			t.Fatal(err)
		}
	}
	// Nobody read: the watcher holds at most its buffer plus the one event
	// its forwarder carries, then its channel is closed.
	count := 0
	for range slow {
		count++
	}
	if count >= n {
		t.Fatalf("slow watcher got all %d events, never dropped", count)
	}
	if st, _ := f.reg.Stats(ctx); st.Watchers != 0 {
		t.Fatalf("%d watchers left after drop", st.Watchers)
	}
}

func TestNewRegistryRejectsNil(t *testing.T) {
	t.Parallel()
	if _, err := app.NewRegistry(nil, memory.NewPresenceStore(), memory.NewRealClock(), app.RegistryOptions{}); err == nil {
		t.Fatal("nil account store accepted")
	}
}

func TestRegistryValidatesEndpoints(t *testing.T) {
	t.Parallel()
	memAddr := memory.Address(newLocal(t, "carol").Identity)
	good := []string{
		"192.168.1.5:7000", "[::1]:7001", "[fe80::1%eth0]:7002", "h:1", "peer-1.example.org:65535",
		"localhost:5000", memAddr,
	}
	bad := []string{
		"192.168.1.5", "192.168.1.5:", "192.168.1.5:0", "192.168.1.5:65536", "192.168.1.5:+80", "192.168.1.5:http",
		"host:7000\nINFO registered peer root", "host\x00:7000", "ho st:7000", "héllo:7000", "[1.2.3.4]:80",
		"-bad.example:80", "a..b:80", "under_score.example:80", strings.Repeat("a", 64) + ".example:80",
		"mem:", "mem:UPPER", "mem:a/b", "::1:7000",
	}
	for _, e := range good {
		if r := app.ValidateEndpoint(e); r != "" {
			t.Errorf("ValidateEndpoint(%q) = %q, want accepted", e, r)
		}
	}
	for _, e := range bad {
		if app.ValidateEndpoint(e) == "" {
			t.Errorf("ValidateEndpoint(%q) accepted", e)
		}
	}

	f := newRegFixture(t, app.RegistryOptions{})
	alice := newLocal(t, "alice")
	for _, e := range bad {
		_, err := f.register(t, alice, domain.Endpoints{Link: []string{"10.0.0.1:7000"}, File: []string{e}}, "")
		var ee *app.EndpointError
		if !errors.Is(err, app.ErrInvalidEndpoint) || !errors.As(err, &ee) || ee.List != "file" || ee.Index != 0 {
			t.Errorf("register with file endpoint %q: %v; want an EndpointError for file[0]", e, err)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\n\x00") {
			t.Errorf("error text carries the raw endpoint: %q", err)
		}
	}
	if _, err := f.register(t, alice, domain.Endpoints{Link: good, File: []string{memAddr}}, "203.0.113.9"); err != nil {
		t.Fatalf("register with valid endpoints: %v", err)
	}
}

// One client holding its share of unused challenges is refused; others
// still get theirs, and the client gets more once it uses or loses some.
func TestRegistryChallengesPerClient(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{MaxChallenges: 10, MaxChallengesPerClient: 3, ChallengeTTL: time.Minute})
	ctx := context.Background()
	var held [][]byte
	for range 3 {
		c, err := f.reg.ChallengeFor(ctx, "198.51.100.7")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	if _, err := f.reg.ChallengeFor(ctx, "198.51.100.7"); !errors.Is(err, ports.ErrBusy) {
		t.Fatalf("4th challenge of one client: %v, want ErrBusy", err)
	}
	for _, other := range []string{"203.0.113.1", "2001:db8::/64"} {
		for range 3 {
			if _, err := f.reg.ChallengeFor(ctx, other); err != nil {
				t.Fatalf("client %s refused while another holds its share: %v", other, err)
			}
		}
	}
	// Using a challenge (even in a failed attempt) frees the client's slot.
	alice := newLocal(t, "alice")
	p := domain.RegistryProof{Action: domain.ActionRegister, Name: alice.Name(), Key: alice.PublicKey(), Challenge: held[0]}
	if _, err := f.reg.Register(ctx, ports.RegisterRequest{Proof: p, Signature: p.Sign(alice)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.ChallengeFor(ctx, "198.51.100.7"); err != nil {
		t.Fatalf("challenge after using one: %v", err)
	}
	if _, err := f.reg.ChallengeFor(ctx, "198.51.100.7"); !errors.Is(err, ports.ErrBusy) {
		t.Fatalf("challenge over the share again: %v, want ErrBusy", err)
	}
	// Expired challenges are forgotten by the sweep, and stop counting.
	f.clock.Advance(time.Minute)
	if err := f.reg.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := f.reg.ChallengeFor(ctx, "198.51.100.7"); err != nil {
			t.Fatalf("challenge after expiry: %v", err)
		}
	}
}

// TestRegistryReplacedSessionGoesOfflineFirst: a client killed and started
// again registers before its old stream is seen to close; watchers get the
// old session's end, then the new one (issue 10, item 8: the sender never
// saw the receiver come back, so nothing resumed until a message was sent).
func TestRegistryReplacedSessionGoesOfflineFirst(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bob := newLocal(t, "bob")
	eps := domain.Endpoints{Link: []string{"192.0.2.7:4100"}}
	if _, err := f.register(t, bob, eps, ""); err != nil {
		t.Fatal(err)
	}
	events, err := f.reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-events; !ev.Peer.Online {
		t.Fatalf("snapshot: %+v", ev)
	}
	f.clock.Advance(time.Second)
	if _, err := f.register(t, bob, eps, ""); err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, want := range []bool{false, true} {
		ev := <-events
		got = append(got, ev.Peer.Online)
		if ev.Peer.Online != want || !ev.Peer.Name().Equal(bob.Name()) {
			t.Fatalf("events after the second register: online %v, want [false true]", got)
		}
	}
	if p, err := f.reg.Lookup(ctx, bob.Name()); err != nil || !p.Online {
		t.Fatalf("lookup after the second register: %+v, %v", p, err)
	}
}

// TestRestartedPeerComesOnlineAgainForWatchers: through DiscoverPeers, a
// peer that registers again with the same endpoints before its old session
// ended is reported as come online (what resumes transfers and flushes the
// outbox to it), not as an unchanged online peer.
func TestRestartedPeerComesOnlineAgainForWatchers(t *testing.T) {
	f := newRegFixture(t, app.RegistryOptions{})
	w := newWorld(t)
	d, err := app.NewDiscoverPeers(w.me, w.dir, w.trust, w.verify, w.events, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	came := make(chan string, 8)
	run(t, func(ctx context.Context) { d.Watch(ctx, func(p domain.Peer) { came <- p.Name().String() }) })
	run(t, func(ctx context.Context) { // the registry's presence, as a directory client reports it
		events, err := f.reg.Watch(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		for ev := range events {
			select {
			case w.dir.events <- ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: ev.Peer}:
			case <-ctx.Done():
				return
			}
		}
	})
	bob := newLocal(t, "bob")
	eps := domain.Endpoints{Link: []string{"192.0.2.7:4100"}, File: []string{"192.0.2.7:4101"}}
	for i := range 2 { // started, then killed and started again on the same ports
		if _, err := f.register(t, bob, eps, ""); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-came:
			if got != "bob" {
				t.Fatalf("came online: %s", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("registration %d: bob never reported as come online", i+1)
		}
	}
}
