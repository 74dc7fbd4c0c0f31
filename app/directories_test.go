package app_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// memDir is a memory directory on its own registry service (the registry,
// or a stand-in for the LAN: a directory that binds nothing for the other).
func memDir(t *testing.T, reg ports.RegistryService) *memory.Directory {
	t.Helper()
	d, closeDir, err := memory.NewDirectory(reg, nil, memory.DirectoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeDir)
	return d
}

// announce puts id online in reg at link and file endpoints.
func announce(t *testing.T, reg ports.RegistryService, id domain.LocalIdentity, link, file string) *memory.Directory {
	t.Helper()
	d := memDir(t, reg)
	if err := d.Register(context.Background(), id, domain.Endpoints{Link: []string{link}, File: []string{file}}); err != nil {
		t.Fatal(err)
	}
	return d
}

// composed is a registry, a LAN stand-in and the Directories over both,
// as alice's client would see them.
func composed(t *testing.T) (regSvc, lanSvc *app.Registry, d *app.Directories) {
	t.Helper()
	regSvc, lanSvc = runRegistry(t), runRegistry(t)
	d, err := app.NewDirectories(memDir(t, regSvc), memDir(t, lanSvc))
	if err != nil {
		t.Fatal(err)
	}
	return regSvc, lanSvc, d
}

func TestDirectoriesMergeLANEndpointsFirstForTheSameKey(t *testing.T) {
	t.Parallel()
	regSvc, lanSvc, d := composed(t)
	bob := mkLocal(t, "bob")
	announce(t, regSvc, bob, "10.77.0.5:4000", "10.77.0.5:5000")
	announce(t, lanSvc, bob, "192.168.1.5:4000", "192.168.1.5:5000")
	ctx := context.Background()
	p, err := d.Lookup(ctx, bob.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !p.Online || !slices.Equal(p.Endpoints.Link, []string{"192.168.1.5:4000", "10.77.0.5:4000"}) ||
		!slices.Equal(p.Endpoints.File, []string{"192.168.1.5:5000", "10.77.0.5:5000"}) {
		t.Fatalf("bob %+v: want the LAN endpoints first, then the registry's", p)
	}
	list, err := d.Online(ctx)
	if err != nil || len(list) != 1 || !slices.Equal(list[0].Endpoints.Link, p.Endpoints.Link) {
		t.Fatalf("online %+v, %v", list, err)
	}
}

func TestDirectoriesNeverMergeALANKeyTheRegistryDoesNotBind(t *testing.T) {
	t.Parallel()
	regSvc, lanSvc, d := composed(t)
	bob, impostor := mkLocal(t, "bob"), mkLocal(t, "bob")
	announce(t, regSvc, bob, "10.77.0.5:4000", "10.77.0.5:5000")
	announce(t, lanSvc, impostor, "192.168.1.66:4000", "192.168.1.66:5000")
	ctx := context.Background()
	w, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Lookup(ctx, bob.Name())
	if err != nil || !p.Identity.SameKey(bob.PublicKey()) || slices.Contains(p.Endpoints.Link, "192.168.1.66:4000") {
		t.Fatalf("lookup bob: %+v, %v", p, err)
	}
	list, _ := d.Online(ctx)
	if len(list) != 1 || !list[0].Identity.SameKey(bob.PublicKey()) || len(list[0].Endpoints.Link) != 1 {
		t.Fatalf("online %+v", list)
	}
	// The watch never reports the impostor's key or address for bob.
	carol := mkLocal(t, "carol")
	announce(t, lanSvc, carol, "192.168.1.7:4000", "192.168.1.7:5000") // a marker after everything else
	for ev := range w {
		if ev.Kind != ports.PeerChanged {
			continue
		}
		if ev.Peer.Name().Equal(bob.Name()) && (!ev.Peer.Identity.SameKey(bob.PublicKey()) || slices.Contains(ev.Peer.Endpoints.Link, "192.168.1.66:4000")) {
			t.Fatalf("watch merged the impostor: %+v", ev.Peer)
		}
		if ev.Peer.Name().Equal(carol.Name()) {
			break
		}
	}
}

func TestDirectoriesBobWhileOfflineInTheRegistryIsNotTakenFromTheLAN(t *testing.T) {
	t.Parallel()
	regSvc, lanSvc, d := composed(t)
	bob, impostor := mkLocal(t, "bob"), mkLocal(t, "bob")
	rd := announce(t, regSvc, bob, "10.77.0.5:4000", "10.77.0.5:5000")
	ctx := context.Background()
	if err := rd.Unregister(ctx); err != nil { // bob is bound, but offline
		t.Fatal(err)
	}
	announce(t, lanSvc, impostor, "192.168.1.66:4000", "192.168.1.66:5000")
	if list, _ := d.Online(ctx); len(list) != 0 {
		t.Fatalf("online %+v: the LAN's bob is not the registry's", list)
	}
	if p, err := d.Lookup(ctx, bob.Name()); err != nil || p.Online || !p.Identity.SameKey(bob.PublicKey()) {
		t.Fatalf("lookup %+v, %v", p, err)
	}
}

func TestDirectoriesListTheUnionAndOfflineOnlyWhenOfflineEverywhere(t *testing.T) {
	t.Parallel()
	regSvc, lanSvc, d := composed(t)
	bob, carol, dave := mkLocal(t, "bob"), mkLocal(t, "carol"), mkLocal(t, "dave")
	ctx := context.Background()
	w, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	announce(t, regSvc, carol, "10.77.0.6:4000", "10.77.0.6:5000")    // registry only
	announce(t, lanSvc, dave, "192.168.1.8:4000", "192.168.1.8:5000") // LAN only
	regBob := announce(t, regSvc, bob, "10.77.0.5:4000", "10.77.0.5:5000")
	lanBob := announce(t, lanSvc, bob, "192.168.1.5:4000", "192.168.1.5:5000")
	waitMerged := func(what string, ok func(domain.Peer) bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-w:
				if ev.Kind == ports.PeerChanged && ev.Peer.Name().Equal(bob.Name()) && ok(ev.Peer) {
					return
				}
			case <-deadline:
				t.Fatalf("watch: no event with %s", what)
			}
		}
	}
	waitMerged("bob on both", func(p domain.Peer) bool { return p.Online && len(p.Endpoints.Link) == 2 })
	list, err := d.Online(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("online %+v, %v: want bob, carol and dave", list, err)
	}
	if err := regBob.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
	waitMerged("bob on the LAN only", func(p domain.Peer) bool {
		return p.Online && slices.Equal(p.Endpoints.Link, []string{"192.168.1.5:4000"})
	})
	if err := lanBob.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
	waitMerged("bob offline", func(p domain.Peer) bool { return !p.Online })
	if p, err := d.Lookup(ctx, bob.Name()); err != nil || p.Online {
		t.Fatalf("lookup %+v, %v", p, err)
	}
	if _, err := d.Lookup(ctx, domain.MustUsername("nobody")); !errors.Is(err, domain.ErrUnknownPeer) {
		t.Fatalf("lookup nobody: %v", err)
	}
}

func TestDirectoriesRegisterAnswersWithTheRegistrysVerdict(t *testing.T) {
	t.Parallel()
	regSvc, lanSvc, d := composed(t)
	alice, other := mkLocal(t, "alice"), mkLocal(t, "alice")
	announce(t, regSvc, other, "10.77.0.9:4000", "10.77.0.9:5000") // the name is taken
	err := d.Register(context.Background(), alice, domain.Endpoints{Link: []string{"192.168.1.2:4000"}})
	if !errors.Is(err, domain.ErrNameTaken) {
		t.Fatalf("register: %v, want ErrNameTaken", err)
	}
	// With no registry, the LAN alone never fails the start.
	lanOnly, err := app.NewDirectories(nil, memDir(t, lanSvc))
	if err != nil {
		t.Fatal(err)
	}
	if err := lanOnly.Register(context.Background(), alice, domain.Endpoints{Link: []string{"192.168.1.2:4000"}}); err != nil {
		t.Fatalf("LAN-only register: %v", err)
	}
	if _, err := app.NewDirectories(nil, nil); err == nil {
		t.Fatal("no directory at all was accepted")
	}
}

// A LAN announcement for a pinned name with another key changes nothing:
// it surfaces as the usual key-changed warning, sending stays blocked and
// a link from that key is refused. A LAN-only stranger is trusted on first
// use and chats like anyone.
func TestE2EALANAnnouncementNeverOverridesAPin(t *testing.T) {
	c := newCluster(t)
	lanSvc := runRegistry(t)
	alice := c.newNode("alice")
	alice.lan = lanSvc
	oldBob := mkLocal(t, "bob")
	ctx := context.Background()
	if err := alice.trust.Pin(ctx, oldBob.Identity, time.Now()); err != nil {
		t.Fatal(err)
	}
	alice.mustStart()
	lanBob := mkLocal(t, "bob")
	announce(t, lanSvc, lanBob, "192.168.1.66:4000", "192.168.1.66:5000")
	kc, err := memory.WaitForEvent(alice.events, e2eTimeout, func(e ports.KeyChangedEvent) bool { return e.Name.Equal(lanBob.Name()) })
	if err != nil {
		t.Fatalf("no KeyChangedEvent: %v", err)
	}
	if kc.Old != oldBob.Fingerprint() || kc.New != lanBob.Fingerprint() {
		t.Fatalf("key change %s → %s", kc.Old.Short(), kc.New.Short())
	}
	var kerr *domain.KeyChangedError
	if _, err := alice.client.Send(ctx, lanBob.Name(), "are you bob?"); !errors.As(err, &kerr) {
		t.Fatalf("send to the LAN's bob: %v, want *domain.KeyChangedError", err)
	}
	pv, err := app.NewPeerVerifier(alice.trust, alice.dir, memory.NewRealClock(), app.NewBus())
	if err != nil {
		t.Fatal(err)
	}
	if err := pv.VerifyPeer(ctx, lanBob.Identity); !errors.As(err, &kerr) {
		t.Fatalf("a link from the LAN's bob: %v, want *domain.KeyChangedError", err)
	}
	if ct, err := alice.trust.Get(ctx, lanBob.Name()); err != nil || !ct.Identity.SameKey(oldBob.PublicKey()) {
		t.Fatalf("the pin moved: %+v, %v", ct, err)
	}

	// carol is on the LAN only: trusted on first use, messages delivered.
	lanNet := &cluster{t: t, net: c.net, reg: lanSvc}
	carol := lanNet.newNode("carol")
	carol.mustStart()
	if _, err := alice.client.Send(ctx, carol.me.Name(), "hello over the LAN"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "carol has the message", func() bool { return len(carol.history(alice)) == 1 })
	if ct, err := alice.trust.Get(ctx, carol.me.Name()); err != nil || !ct.Identity.SameKey(carol.me.PublicKey()) {
		t.Fatalf("carol not pinned on first use: %+v, %v", ct, err)
	}
}

// With the registry unreachable, the LAN takes us at once and the
// registration completes in the background when the registry is back.
func TestDirectoriesRegisterWithTheRegistryLaterWhileTheLANRuns(t *testing.T) {
	t.Parallel()
	regSvc, lanSvc := runRegistry(t), runRegistry(t)
	net := memory.NewNetwork()
	alice := mkLocal(t, "alice")
	host, closeHost, err := memory.NewHost(net, alice, memory.AcceptAll)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeHost)
	regDir, closeReg, err := memory.NewDirectory(regSvc, host, memory.DirectoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeReg)
	d, err := app.NewDirectories(regDir, memDir(t, lanSvc))
	if err != nil {
		t.Fatal(err)
	}
	d.SetRetry(app.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond})
	t.Cleanup(d.Close)
	net.Disconnect(host) // the registry cannot be reached
	ctx := context.Background()
	if err := d.Register(ctx, alice, domain.Endpoints{Link: []string{"192.168.1.2:4000"}}); err != nil {
		t.Fatalf("register with the registry down: %v", err)
	}
	if p, err := lanSvc.Lookup(ctx, alice.Name()); err != nil || !p.Online {
		t.Fatalf("the LAN did not take us: %+v, %v", p, err)
	}
	net.HealHost(host)
	eventually(t, "the registry lists alice", func() bool {
		p, err := regSvc.Lookup(ctx, alice.Name())
		return err == nil && p.Online
	})
	if err := d.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
}

// staticDir is a directory that knows a fixed set of peers.
type staticDir []domain.Peer

func (staticDir) Register(context.Context, domain.LocalIdentity, domain.Endpoints) error { return nil }
func (staticDir) Unregister(context.Context) error                                       { return nil }
func (s staticDir) Lookup(_ context.Context, name domain.Username) (domain.Peer, error) {
	for _, p := range s {
		if p.Name().Equal(name) {
			return p, nil
		}
	}
	return domain.Peer{}, domain.ErrUnknownPeer
}
func (s staticDir) Online(context.Context) ([]domain.Peer, error) {
	var out []domain.Peer
	for _, p := range s {
		if p.Online {
			out = append(out, p)
		}
	}
	return out, nil
}
func (s staticDir) Watch(ctx context.Context) (<-chan ports.DirectoryEvent, error) {
	ch := make(chan ports.DirectoryEvent, len(s)+1)
	ch <- ports.DirectoryEvent{Kind: ports.Connected}
	for _, p := range s {
		ch <- ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: p}
	}
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

// A peer offline at the registry but on the LAN is online at its LAN
// addresses only: where the registry last saw it is stale.
func TestDirectoriesOfflineAtTheRegistryOnlineOnTheLAN(t *testing.T) {
	t.Parallel()
	bob := mkLocal(t, "bob")
	reg := staticDir{{Identity: bob.Identity, Online: false, Endpoints: domain.Endpoints{Link: []string{"10.77.0.5:4000"}}}}
	lan := staticDir{{Identity: bob.Identity, Online: true, Endpoints: domain.Endpoints{Link: []string{"192.168.1.5:4000"}}}}
	d, err := app.NewDirectories(reg, lan)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := d.Lookup(ctx, bob.Name())
	if err != nil || !p.Online || !slices.Equal(p.Endpoints.Link, []string{"192.168.1.5:4000"}) {
		t.Fatalf("lookup %+v, %v", p, err)
	}
	list, err := d.Online(ctx)
	if err != nil || len(list) != 1 || !slices.Equal(list[0].Endpoints.Link, []string{"192.168.1.5:4000"}) {
		t.Fatalf("online %+v, %v", list, err)
	}
	w, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for ev := range w {
		if ev.Kind == ports.PeerChanged && ev.Peer.Online {
			if !slices.Equal(ev.Peer.Endpoints.Link, []string{"192.168.1.5:4000"}) {
				t.Fatalf("watch %+v", ev.Peer)
			}
			return
		}
	}
}

// TestDirectoriesRestartSeenByTheRegistryIsNotHiddenByTheLAN: bob is killed
// and started again on the same endpoints; the registry says offline, then
// online, while the LAN still lists his old run. The merged stream says he
// went away before he is back (issue 10, item 8: hidden, the restart
// resumed nothing until a message was sent).
func TestDirectoriesRestartSeenByTheRegistryIsNotHiddenByTheLAN(t *testing.T) {
	t.Parallel()
	bob := mkLocal(t, "bob")
	at := domain.Endpoints{Link: []string{"192.168.1.5:4000"}, File: []string{"192.168.1.5:4001"}}
	online := domain.Peer{Identity: bob.Identity, Online: true, Endpoints: at}
	reg, lan := newFakeDirectory(online), newFakeDirectory(online)
	d, err := app.NewDirectories(reg, lan)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func() domain.Peer {
		t.Helper()
		select {
		case ev := <-w:
			return ev.Peer
		case <-time.After(5 * time.Second):
			t.Fatal("no merged event")
		}
		return domain.Peer{}
	}
	reg.events <- ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: online}
	lan.events <- ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: online}
	for _, want := range []bool{true, true} {
		if p := next(); p.Online != want {
			t.Fatalf("before the restart: online %v", p.Online)
		}
	}
	reg.events <- ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: domain.Peer{Identity: bob.Identity}}
	if p := next(); !p.Online {
		t.Fatal("offline at the registry but online on the LAN: merged offline") // the rule for registry outages stays
	}
	reg.events <- ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: online}
	if p := next(); p.Online {
		t.Fatal("the restart the registry saw is hidden: no offline before the new session")
	}
	if p := next(); !p.Online || !slices.Equal(p.Endpoints.Link, at.Link) {
		t.Fatalf("after the restart: %+v", p)
	}
}
