package app_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// The address policy: what a registration may make the registry publish.
func TestRegistryAddressPolicy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		endpoint, observed string
		reason             string // "" kept
		scope              domain.AddrScope
	}{
		{"127.0.0.1:22", "203.0.113.9", app.RefusedLoopback, ""},
		{"[::1]:22", "10.0.0.7", app.RefusedLoopback, ""},
		{"127.0.0.1:22", "", app.RefusedLoopback, ""},
		{"127.0.0.1:7000", "127.0.0.1", "", domain.ScopeLoopback},
		{"127.0.0.1:7000", "::ffff:127.0.0.1", "", domain.ScopeLoopback},
		{"10.0.0.1:80", "203.0.113.9", "", domain.ScopePrivate},
		{"192.168.1.5:7000", "203.0.113.9", "", domain.ScopePrivate},
		{"100.64.1.2:7000", "203.0.113.9", "", domain.ScopePrivate},
		{"[fd00::5]:7000", "203.0.113.9", "", domain.ScopePrivate},
		{"169.254.3.4:7000", "203.0.113.9", "", domain.ScopeLinkLocal},
		{"[fe80::1%eth0]:7000", "203.0.113.9", "", domain.ScopeLinkLocal},
		{"example.com:443", "203.0.113.9", app.RefusedDNSName, ""},
		{"localhost:7000", "127.0.0.1", app.RefusedDNSName, ""},
		{"203.0.113.9:7000", "203.0.113.9", "", domain.ScopePublic},
		{"203.0.113.9:7000", "::ffff:203.0.113.9", "", domain.ScopePublic},
		{"[2001:db8::1]:7000", "2001:db8::1", "", domain.ScopePublic},
		{"198.51.100.7:7000", "203.0.113.9", app.RefusedUnverifiedPublic, ""},
		{"198.51.100.7:7000", "", app.RefusedUnverifiedPublic, ""},
		{"0.0.0.0:7000", "203.0.113.9", app.RefusedInvalidAddress, ""},
		{"224.0.0.1:7000", "203.0.113.9", app.RefusedInvalidAddress, ""},
		{"mem:abc123", "", "", ""},
	}
	for _, tc := range cases {
		f := newRegFixture(t, app.RegistryOptions{})
		alice := newLocal(t, "alice")
		sess, err := f.register(t, alice, domain.Endpoints{Link: []string{tc.endpoint}}, tc.observed)
		if err != nil {
			t.Fatalf("%s from %q: register: %v (refusals are not fatal)", tc.endpoint, tc.observed, err)
		}
		p, err := f.reg.Lookup(context.Background(), alice.Name())
		if err != nil {
			t.Fatal(err)
		}
		if tc.reason == "" {
			netw := "tcp"
			if tc.scope == "" {
				netw = "mem"
			}
			want := []domain.Candidate{{Type: domain.CandidateHost, Net: netw, Addr: tc.endpoint, Scope: tc.scope}}
			if len(sess.Refused) != 0 || !slices.Equal(p.Endpoints.Link, []string{tc.endpoint}) || !slices.Equal(p.Endpoints.Candidates, want) {
				t.Errorf("%s from %q: refused %+v, published %+v; want kept as %s", tc.endpoint, tc.observed, sess.Refused, p.Endpoints, tc.scope)
			}
			continue
		}
		want := []ports.RefusedEndpoint{{List: "link", Index: 0, Endpoint: tc.endpoint, Reason: tc.reason}}
		if !slices.Equal(sess.Refused, want) || len(p.Endpoints.Link) != 0 {
			t.Errorf("%s from %q: refused %+v, published %+v; want refused as %s", tc.endpoint, tc.observed, sess.Refused, p.Endpoints, tc.reason)
		}
	}
}

// STUN observations become the server-reflexive candidate and the NAT
// mapping; a public address claimed without proof is admitted once STUN
// observes its IP.
func TestRegistryObserveBinding(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{SessionTTL: time.Hour})
	ctx := context.Background()
	watch, err := f.reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alice := newLocal(t, "alice")
	sess, err := f.register(t, alice, domain.Endpoints{File: []string{"10.0.0.2:4100", "198.51.100.7:4100"}}, "203.0.113.50")
	if err != nil {
		t.Fatal(err)
	}
	<-watch // alice online
	user := sess.STUN.Username
	if len(sess.STUN.Key) != 32 || len(user) != 22 {
		t.Fatalf("STUN credentials %q / %d bytes", user, len(sess.STUN.Key))
	}
	key, err := f.reg.STUNKey(ctx, user)
	if err != nil || !slices.Equal(key, sess.STUN.Key) {
		t.Fatalf("STUNKey: %v", err)
	}
	if _, err := f.reg.STUNKey(ctx, "nobody"); !errors.Is(err, ports.ErrSessionInvalid) {
		t.Fatalf("STUNKey of an unknown username: %v", err)
	}
	look := func() domain.Endpoints {
		t.Helper()
		p, err := f.reg.Lookup(ctx, alice.Name())
		if err != nil {
			t.Fatal(err)
		}
		return p.Endpoints
	}
	observe := func(server int, addr string) {
		t.Helper()
		if err := f.reg.ObserveBinding(ctx, user, server, netip.MustParseAddrPort(addr)); err != nil {
			t.Fatal(err)
		}
	}

	// One port: the reflexive address, mapping not yet known; a presence event.
	observe(0, "198.51.100.7:61000")
	ev := <-watch
	if !slices.Contains(ev.Peer.Endpoints.File, "198.51.100.7:61000") {
		t.Fatalf("presence event %+v", ev.Peer.Endpoints)
	}
	eps := look()
	wantFile := []string{"10.0.0.2:4100", "198.51.100.7:4100", "198.51.100.7:61000"}
	if !slices.Equal(eps.File, wantFile) || eps.NAT != domain.NATUnknown {
		t.Fatalf("after one port: %+v, want file %v (the claimed public address admitted by STUN)", eps, wantFile)
	}
	if c := eps.Candidates[len(eps.Candidates)-1]; c != (domain.Candidate{Type: domain.CandidateSrflx, Net: "udp", Addr: "198.51.100.7:61000", Scope: domain.ScopePublic}) {
		t.Fatalf("srflx candidate %+v", c)
	}

	// Both ports alike: endpoint-independent.
	observe(1, "198.51.100.7:61000")
	if eps := look(); eps.NAT != domain.NATEndpointIndependent {
		t.Fatalf("NAT %q, want endpoint-independent", eps.NAT)
	}
	// They differ: endpoint-dependent; the first port's address stays the srflx.
	observe(1, "198.51.100.7:61001")
	if eps := look(); eps.NAT != domain.NATEndpointDependent || eps.File[len(eps.File)-1] != "198.51.100.7:61000" {
		t.Fatalf("after differing ports: %+v", eps)
	}
	// Observations far apart are not compared; the newer wins.
	f.clock.Advance(time.Minute)
	observe(0, "198.51.100.7:62000")
	if eps := look(); eps.NAT != domain.NATUnknown || eps.File[len(eps.File)-1] != "198.51.100.7:62000" {
		t.Fatalf("after a re-binding: %+v", eps)
	}
	// The mapped address is the claimed one: no NAT, no extra candidate.
	observe(0, "198.51.100.7:4100")
	observe(1, "198.51.100.7:4100")
	if eps := look(); eps.NAT != domain.NATNone || !slices.Equal(eps.File, []string{"10.0.0.2:4100", "198.51.100.7:4100"}) {
		t.Fatalf("no NAT: %+v", eps)
	}

	// A new session of the name invalidates the old STUN username.
	if _, err := f.register(t, alice, domain.Endpoints{}, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.ObserveBinding(ctx, user, 0, netip.MustParseAddrPort("198.51.100.7:1")); !errors.Is(err, ports.ErrSessionInvalid) {
		t.Fatalf("observe with a replaced session: %v", err)
	}
	if err := f.reg.ObserveBinding(ctx, user, 2, netip.MustParseAddrPort("198.51.100.7:1")); err == nil {
		t.Fatal("server port 2 accepted")
	}
}

// A v1-signed proof gets ErrOutdatedProof, not "bad signature".
func TestRegistryOutdatedProof(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{})
	alice := newLocal(t, "alice")
	p, _ := f.proof(t, alice, domain.ActionRegister, domain.Endpoints{Link: []string{"10.0.0.1:1"}})
	_, err := f.reg.Register(context.Background(), ports.RegisterRequest{Proof: p, Signature: alice.Sign(p.SigningBytesV1())})
	if !errors.Is(err, domain.ErrOutdatedProof) {
		t.Fatalf("v1 proof: %v", err)
	}
}

// A session that keeps changing its mapping cannot flood every watcher:
// a few changes are published at once, the rest is stored (lookups see
// it) and published by a later observation.
func TestRegistryObserveBindingBudget(t *testing.T) {
	t.Parallel()
	f := newRegFixture(t, app.RegistryOptions{SessionTTL: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := f.reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alice := newLocal(t, "alice")
	sess, err := f.register(t, alice, domain.Endpoints{}, "203.0.113.50")
	if err != nil {
		t.Fatal(err)
	}
	<-watch // alice online
	var last netip.AddrPort
	for i := range 20 {
		last = netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(50000+i))
		if err := f.reg.ObserveBinding(ctx, sess.STUN.Username, 0, last); err != nil {
			t.Fatal(err)
		}
	}
	p, err := f.reg.Lookup(ctx, alice.Name())
	if err != nil || !slices.Equal(p.Endpoints.File, []string{last.String()}) {
		t.Fatalf("lookup %+v %v, want the latest mapping", p.Endpoints, err)
	}
	f.clock.Advance(5 * time.Second)
	if err := f.reg.ObserveBinding(ctx, sess.STUN.Username, 0, last); err != nil {
		t.Fatal(err)
	}
	// A sentinel after: the events before it are all alice published.
	if _, err := f.register(t, newLocal(t, "bob"), domain.Endpoints{}, ""); err != nil {
		t.Fatal(err)
	}
	var got []string
	for ev := range watch {
		if ev.Peer.Name().String() == "bob" {
			break
		}
		got = append(got, ev.Peer.Endpoints.File[0])
	}
	if len(got) != 5 || got[4] != last.String() {
		t.Fatalf("published %v: want 4 at once, then the latest after the refill", got)
	}
}
