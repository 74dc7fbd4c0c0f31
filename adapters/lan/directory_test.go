package lan_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/lan"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func eps(ip string) domain.Endpoints {
	return domain.Endpoints{
		Link: []string{ip + ":4000", "203.0.113.7:4000"}, // the public one is not for the LAN to vouch for
		File: []string{ip + ":5000"},
	}
}

func TestTwoDirectoriesFindEachOtherAndSeeGoodbye(t *testing.T) {
	t.Parallel()
	h := &hub{}
	a, _ := newDir(t, h, "10.0.0.1", fastConfig())
	b, _ := newDir(t, h, "10.0.0.2", fastConfig())
	alice, bob := newIdentity(t, "alice"), newIdentity(t, "bob")
	wa, wb := watch(t, a), watch(t, b)
	ctx := context.Background()
	if err := a.Register(ctx, alice, eps("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, bob, eps("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	gotBob := waitPeer(t, wa, "bob", online)
	if !gotBob.Identity.SameKey(bob.PublicKey()) {
		t.Fatal("alice heard bob with another key")
	}
	if !slices.Equal(gotBob.Endpoints.Link, []string{"10.0.0.2:4000"}) || !slices.Equal(gotBob.Endpoints.File, []string{"10.0.0.2:5000"}) {
		t.Fatalf("bob's endpoints %+v", gotBob.Endpoints)
	}
	waitPeer(t, wb, "alice", online)
	p, err := a.Lookup(ctx, bob.Name())
	if err != nil || !p.Online {
		t.Fatalf("lookup bob: %+v, %v", p, err)
	}
	list, err := b.Online(ctx)
	if err != nil || len(list) != 1 || !list[0].Name().Equal(alice.Name()) {
		t.Fatalf("bob's online list %v, %v", list, err)
	}
	if _, err := a.Lookup(ctx, domain.MustUsername("carol")); !errors.Is(err, domain.ErrUnknownPeer) {
		t.Fatalf("lookup carol: %v", err)
	}

	if err := b.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, wa, "bob", offline)
	if p, err := a.Lookup(ctx, bob.Name()); err != nil || p.Online {
		t.Fatalf("after goodbye: %+v, %v", p, err)
	}
}

func TestSilentPeerExpires(t *testing.T) {
	t.Parallel()
	h := &hub{}
	a, _ := newDir(t, h, "10.0.0.1", fastConfig())
	b, bc := newDir(t, h, "10.0.0.2", fastConfig())
	wa := watch(t, a)
	if err := b.Register(context.Background(), newIdentity(t, "bob"), eps("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, wa, "bob", online)
	bc.mute() // the cable is pulled: no goodbye
	waitPeer(t, wa, "bob", offline)
}

func TestReplayAfterGoodbyeIsIgnored(t *testing.T) {
	t.Parallel()
	h := &hub{}
	a, _ := newDir(t, h, "10.0.0.1", fastConfig())
	b, _ := newDir(t, h, "10.0.0.2", fastConfig())
	wa := watch(t, a)
	ctx := context.Background()
	if err := b.Register(ctx, newIdentity(t, "bob"), eps("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, wa, "bob", online)
	if err := b.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, wa, "bob", offline)
	// An attacker replays every announcement bob sent, then a fresh one
	// of another name so we know the replays were handled.
	for _, p := range h.packets() {
		h.inject(p, netip.MustParseAddr("10.0.0.66"))
	}
	carol := newIdentity(t, "carol")
	fresh, err := lan.Encode(carol, lan.Packet{Type: lan.TypeAnnounce, Instance: 1, Sequence: 1, Time: time.Now(),
		Candidates: []lan.Candidate{{Kind: lan.KindLink, Addr: netip.MustParseAddrPort("10.0.0.3:1")}}})
	if err != nil {
		t.Fatal(err)
	}
	h.inject(fresh, netip.MustParseAddr("10.0.0.3"))
	waitPeer(t, wa, "carol", online)
	if p, err := a.Lookup(ctx, domain.MustUsername("bob")); err != nil || p.Online {
		t.Fatalf("a replay brought bob back: %+v, %v", p, err)
	}
}

func TestFirstKeyHoldsTheNameWhileHeard(t *testing.T) {
	t.Parallel()
	h := &hub{}
	a, _ := newDir(t, h, "10.0.0.1", fastConfig())
	b, _ := newDir(t, h, "10.0.0.2", fastConfig())
	wa := watch(t, a)
	bob := newIdentity(t, "bob")
	if err := b.Register(context.Background(), bob, eps("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, wa, "bob", online)
	impostor := newIdentity(t, "bob")
	forged, err := lan.Encode(impostor, lan.Packet{Type: lan.TypeAnnounce, Instance: 7, Sequence: 1, Time: time.Now(),
		Candidates: []lan.Candidate{{Kind: lan.KindLink, Addr: netip.MustParseAddrPort("10.0.0.66:1")}}})
	if err != nil {
		t.Fatal(err)
	}
	h.inject(forged, netip.MustParseAddr("10.0.0.66"))
	// bob moves (an event each time); the impostor never shows.
	for i := range 3 {
		moved := domain.Endpoints{Link: []string{"10.0.0.2:" + string(rune('1'+i)) + "000"}}
		if err := b.Register(context.Background(), bob, moved); err != nil {
			t.Fatal(err)
		}
		p := waitPeer(t, wa, "bob", func(p domain.Peer) bool {
			return slices.Equal(p.Endpoints.Link, moved.Link) || !p.Identity.SameKey(bob.PublicKey())
		})
		if !p.Identity.SameKey(bob.PublicKey()) {
			t.Fatal("the impostor's key replaced bob's")
		}
		h.inject(forged, netip.MustParseAddr("10.0.0.66"))
	}
}

func TestOwnEchoAndOwnNameAreIgnored(t *testing.T) {
	t.Parallel()
	h := &hub{}
	a, _ := newDir(t, h, "10.0.0.1", fastConfig())
	wa := watch(t, a)
	alice := newIdentity(t, "alice")
	if err := a.Register(context.Background(), alice, eps("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	other := newIdentity(t, "alice")
	b, err := lan.Encode(other, lan.Packet{Type: lan.TypeAnnounce, Instance: 9, Sequence: 1, Time: time.Now(),
		Candidates: []lan.Candidate{{Kind: lan.KindLink, Addr: netip.MustParseAddrPort("10.0.0.9:1")}}})
	if err != nil {
		t.Fatal(err)
	}
	h.inject(b, netip.MustParseAddr("10.0.0.9"))
	dave := newIdentity(t, "dave")
	db, _ := lan.Encode(dave, lan.Packet{Type: lan.TypeAnnounce, Instance: 1, Sequence: 1, Time: time.Now(),
		Candidates: []lan.Candidate{{Kind: lan.KindLink, Addr: netip.MustParseAddrPort("10.0.0.4:1")}}})
	h.inject(db, netip.MustParseAddr("10.0.0.4"))
	waitPeer(t, wa, "dave", online)
	list, _ := a.Online(context.Background())
	if len(list) != 1 {
		t.Fatalf("online %v: our own echo or a claim of our name was listed", list)
	}
}

// announceAs builds a valid announcement of a fresh identity.
func announceAs(t *testing.T, name string) []byte {
	t.Helper()
	b, err := lan.Encode(newIdentity(t, name), lan.Packet{Type: lan.TypeAnnounce, Instance: 1, Sequence: 1, Time: time.Now(),
		Candidates: []lan.Candidate{{Kind: lan.KindLink, Addr: netip.MustParseAddrPort("10.0.0.5:1")}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOneSourceIsRateLimitedAndBoundedInNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		cfg       lan.Config
		send, max int
	}{
		{"burst", lan.Config{Interval: time.Hour, SourceRate: 1e-9, SourceBurst: 5}, 12, 5},
		{"names per source", lan.Config{Interval: time.Hour, SourceRate: 1e-9, SourceBurst: 1000}, 40, lan.MaxNamesPerSource},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &hub{}
			a, _ := newDir(t, h, "10.0.0.1", c.cfg)
			wa := watch(t, a)
			flooder := netip.MustParseAddr("10.0.0.66")
			for i := range c.send {
				h.inject(announceAs(t, "flood-"+string(rune('a'+i%26))+string(rune('a'+i/26))), flooder)
			}
			// A packet from another source is handled after the flood.
			h.inject(announceAs(t, "zed"), netip.MustParseAddr("10.0.0.7"))
			waitPeer(t, wa, "zed", online)
			list, _ := a.Online(context.Background())
			if got := len(list) - 1; got != c.max {
				t.Fatalf("%d of %d flood names listed, want %d", got, c.send, c.max)
			}
		})
	}
}

func TestCloseEndsWatchAndSaysGoodbye(t *testing.T) {
	t.Parallel()
	h := &hub{}
	a, _ := newDir(t, h, "10.0.0.1", fastConfig())
	b := lan.NewDirectoryOn(h.join("10.0.0.2"), fastConfig(), nil)
	wa, wb := watch(t, a), watch(t, b)
	if err := b.Register(context.Background(), newIdentity(t, "bob"), eps("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, wa, "bob", online)
	b.Close()
	waitPeer(t, wa, "bob", offline)
	for range wb {
	}
	if _, err := b.Watch(context.Background()); err == nil {
		t.Fatal("watch after close")
	}
}

// Only addresses a LAN peer can be dialled at are kept: private and
// link-local (with the zone of the interface the packet came by); loopback
// only over a loopback interface; never a public address.
func TestCandidatesAreFilteredByScope(t *testing.T) {
	t.Parallel()
	h := &hub{}
	a, _ := newDir(t, h, "10.0.0.1", fastConfig())
	wa := watch(t, a)
	b, err := lan.Encode(newIdentity(t, "erin"), lan.Packet{Type: lan.TypeAnnounce, Instance: 1, Sequence: 1, Time: time.Now(),
		Candidates: []lan.Candidate{
			{Kind: lan.KindLink, Addr: netip.MustParseAddrPort("127.0.0.1:4000")},
			{Kind: lan.KindLink, Addr: netip.MustParseAddrPort("203.0.113.5:4000")},
			{Kind: lan.KindLink, Addr: netip.MustParseAddrPort("[fe80::9]:4000")},
			{Kind: lan.KindLink, Addr: netip.MustParseAddrPort("10.0.0.9:4000")},
			{Kind: lan.KindFile, Addr: netip.MustParseAddrPort("[fd00::9]:5000")},
			{Kind: lan.KindFile, Addr: netip.MustParseAddrPort("169.254.3.4:5000")},
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.inject(b, netip.MustParseAddr("10.0.0.9"))
	p := waitPeer(t, wa, "erin", online)
	if want := []string{"10.0.0.9:4000", "[fe80::9%lan0]:4000"}; !slices.Equal(p.Endpoints.Link, want) {
		t.Fatalf("link endpoints %v, want %v", p.Endpoints.Link, want)
	}
	if want := []string{"[fd00::9]:5000", "169.254.3.4:5000"}; !slices.Equal(p.Endpoints.File, want) {
		t.Fatalf("file endpoints %v, want %v", p.Endpoints.File, want)
	}
}

// A watcher that does not keep up loses events, then gets a Resync, and
// Online has everything.
func TestSlowWatcherGetsAResync(t *testing.T) {
	t.Parallel()
	h := &hub{}
	cfg := fastConfig()
	cfg.Interval, cfg.Expiry, cfg.WatchBuffer = time.Hour, time.Hour, 1
	a, _ := newDir(t, h, "10.0.0.1", cfg)
	wa := watch(t, a) // holds Connected: full, so the next events are lost
	names := []string{"fay", "gus", "hal"}
	for _, name := range names {
		h.inject(announceAs(t, name), netip.MustParseAddr("10.0.0.5"))
	}
	timeout := time.After(10 * time.Second)
	for i := 0; ; i++ {
		var ev ports.DirectoryEvent
		select {
		case ev = <-wa:
		case <-timeout:
			t.Fatal("no Resync after lost events")
		}
		if ev.Kind == ports.Resync {
			break
		}
		// Each event read makes room; the next change brings the Resync.
		names = append(names, fmt.Sprintf("ivy%d", i))
		h.inject(announceAs(t, names[len(names)-1]), netip.MustParseAddr("10.0.0.5"))
	}
	// Online has every name, lost events or not (the last packets may
	// still be in the socket's queue: wait for them, bounded).
	for deadline := time.Now().Add(10 * time.Second); ; {
		list, err := a.Online(context.Background())
		if err == nil && len(list) == len(names) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("online %d of %d: %v", len(list), len(names), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
