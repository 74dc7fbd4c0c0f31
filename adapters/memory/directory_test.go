package memory_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

const ttl = 30 * time.Second // the registry's session lifetime on its fake clock

// registry runs an app.Registry on a fake clock; tests expire sessions by
// advancing the clock and calling Reap.
func registry(t *testing.T) (*app.Registry, *memory.Clock) {
	reg, clock, _ := registryWithPresence(t)
	return reg, clock
}

func registryWithPresence(t *testing.T) (*app.Registry, *memory.Clock, *memory.PresenceStore) {
	t.Helper()
	clock := memory.NewClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	presence := memory.NewPresenceStore()
	reg, err := app.NewRegistry(memory.NewAccountStore(), presence, clock, app.RegistryOptions{SessionTTL: ttl, ReapInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return reg, clock, presence
}

func directory(t *testing.T, reg ports.RegistryService, h *memory.Host) *memory.Directory {
	t.Helper()
	d, cleanup, err := memory.NewDirectory(reg, h, memory.DirectoryConfig{Heartbeat: 5 * time.Millisecond, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return d
}

// stream reads a Watch channel.
type stream struct {
	t  *testing.T
	ch <-chan ports.DirectoryEvent
}

func watch(t *testing.T, d *memory.Directory) stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream{t, ch}
}

// next returns the next event that match accepts, skipping others.
func (s stream) next(what string, match func(ports.DirectoryEvent) bool) ports.DirectoryEvent {
	s.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev, ok := <-s.ch:
			if !ok {
				s.t.Fatalf("stream closed waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			s.t.Fatalf("no %s", what)
		}
	}
}

func kind(k ports.DirectoryEventKind) func(ports.DirectoryEvent) bool {
	return func(ev ports.DirectoryEvent) bool { return ev.Kind == k }
}

func presence(name string, online bool) func(ports.DirectoryEvent) bool {
	return func(ev ports.DirectoryEvent) bool {
		return ev.Kind == ports.PeerChanged && ev.Peer.Name().Equal(domain.MustUsername(name)) && ev.Peer.Online == online
	}
}

func TestDirectoryRegisterWatchUnregister(t *testing.T) {
	ctx := context.Background()
	reg, _ := registry(t)
	n := memory.NewNetwork()
	a, b := host(t, n, "alice", memory.AcceptAll), host(t, n, "bob", memory.AcceptAll)
	da, db := directory(t, reg, a.Host), directory(t, reg, b.Host)

	if err := db.Register(ctx, b.Identity(), b.Peer().Endpoints); err != nil {
		t.Fatal(err)
	}
	w := watch(t, db)
	first := <-w.ch
	if first.Kind != ports.Connected {
		t.Fatalf("first event %v, want Connected", first.Kind)
	}
	w.next("bob in the online set", presence("bob", true))

	if err := da.Register(ctx, a.Identity(), a.Peer().Endpoints); err != nil {
		t.Fatal(err)
	}
	ev := w.next("alice online", presence("alice", true))
	if !ev.Peer.Identity.SameKey(a.Identity().PublicKey()) || len(ev.Peer.Endpoints.Link) == 0 || ev.Peer.Endpoints.Link[0] != a.Addr() {
		t.Fatalf("alice's event carries %v", ev.Peer.Endpoints)
	}
	p, err := db.Lookup(ctx, domain.MustUsername("ALICE"))
	if err != nil || !p.Online || !p.Identity.SameKey(a.Identity().PublicKey()) {
		t.Fatalf("Lookup alice: %+v, %v", p, err)
	}
	// The looked-up peer is reachable on the network.
	if err := b.Link().Send(ctx, p, env("found you")); err != nil {
		t.Fatal(err)
	}
	a.in.waitFor(t, "bob:found you")
	if _, err := db.Lookup(ctx, domain.MustUsername("nobody")); !errors.Is(err, domain.ErrUnknownPeer) {
		t.Fatalf("Lookup of an unknown name: %v, want ErrUnknownPeer", err)
	}
	online, err := db.Online(ctx)
	if err != nil || len(online) != 2 {
		t.Fatalf("Online: %d peers, %v", len(online), err)
	}

	squatter := directory(t, reg, nil)
	if err := squatter.Register(ctx, newLocal(t, "a1ice"), domain.Endpoints{}); !errors.Is(err, domain.ErrNameTaken) {
		t.Fatalf("a second key registering a look-alike of alice: %v, want ErrNameTaken", err)
	}

	if err := da.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
	w.next("alice offline", presence("alice", false))
}

func TestDirectoryKeepsSessionThroughDisconnect(t *testing.T) {
	ctx := context.Background()
	reg, clock, presences := registryWithPresence(t)
	n := memory.NewNetwork()
	a, b := host(t, n, "alice", memory.AcceptAll), host(t, n, "bob", memory.AcceptAll)
	da, db := directory(t, reg, a.Host), directory(t, reg, b.Host)
	if err := da.Register(ctx, a.Identity(), a.Peer().Endpoints); err != nil {
		t.Fatal(err)
	}
	wb, wa := watch(t, db), watch(t, da)
	wb.next("alice online", presence("alice", true))
	wa.next("alice connected", kind(ports.Connected))

	// Heartbeats keep alice online across session lifetimes: each round
	// moves the clock by 3/4 of a lifetime, waits for a heartbeat at the new
	// time, and reaps.
	for range 3 {
		clock.Advance(ttl * 3 / 4)
		want := clock.Now().Add(ttl)
		deadline := time.After(wait)
		for {
			p, err := presences.Get(ctx, a.Identity().Name())
			if err != nil {
				t.Fatalf("alice's presence: %v", err)
			}
			if !p.ExpiresAt.Before(want) {
				break
			}
			select {
			case <-deadline:
				t.Fatal("no heartbeat renewed alice's session")
			case <-time.After(time.Millisecond): // polling the registry, as a client's heartbeat would
			}
		}
		if err := reg.Reap(ctx); err != nil {
			t.Fatal(err)
		}
		if p, err := db.Lookup(ctx, a.Identity().Name()); err != nil || !p.Online {
			t.Fatalf("alice offline while heartbeating: %+v, %v", p, err)
		}
	}

	// Unplugged: alice's watch says so, the registry expires her.
	n.Disconnect(a.Host)
	wa.next("alice disconnected", kind(ports.Disconnected))
	if _, err := da.Online(ctx); !errors.Is(err, memory.ErrDisconnected) {
		t.Fatalf("Online while disconnected: %v", err)
	}
	clock.Advance(2 * ttl)
	if err := reg.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	wb.next("alice offline after expiry", presence("alice", false))

	// Plugged in again: the heartbeat finds the session gone and registers again.
	n.HealHost(a.Host)
	wb.next("alice online again", presence("alice", true))
	wa.next("alice reconnected", kind(ports.Connected))
	wa.next("resync after reconnect", kind(ports.Resync))
}

func TestDirectoryCloseEndsSession(t *testing.T) {
	ctx := context.Background()
	reg, _ := registry(t)
	n := memory.NewNetwork()
	a := host(t, n, "alice", memory.AcceptAll)
	da, cleanup, err := memory.NewDirectory(reg, a.Host, memory.DirectoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	db := directory(t, reg, nil)
	if err := da.Register(ctx, a.Identity(), a.Peer().Endpoints); err != nil {
		t.Fatal(err)
	}
	wb := watch(t, db)
	wb.next("alice online", presence("alice", true))
	wa, err := da.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	wb.next("alice offline after Close", presence("alice", false))
	for range wa {
	} // closed by Close
	if err := da.Register(ctx, a.Identity(), a.Peer().Endpoints); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Register after Close: %v", err)
	}
}

func TestDirectoryRenewsAsSoonAsTheNetworkReturns(t *testing.T) {
	ctx := context.Background()
	reg, clock := registry(t)
	n := memory.NewNetwork()
	a := host(t, n, "alice", memory.AcceptAll)
	// Heartbeats so rare that only the reaction to the healed network can
	// bring alice back within the test.
	da, cleanup, err := memory.NewDirectory(reg, a.Host, memory.DirectoryConfig{Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	db := directory(t, reg, nil)
	if err := da.Register(ctx, a.Identity(), a.Peer().Endpoints); err != nil {
		t.Fatal(err)
	}
	wb := watch(t, db)
	wb.next("alice online", presence("alice", true))
	n.Disconnect(a.Host)
	clock.Advance(2 * ttl)
	if err := reg.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	wb.next("alice offline", presence("alice", false))
	n.HealHost(a.Host)
	wb.next("alice online after the network returned", presence("alice", true))
}

func TestDirectoryContract(t *testing.T) {
	contract.Directory(t, func(t *testing.T) contract.DirectoryFactory {
		reg, _ := registry(t)
		return func(t *testing.T) ports.Directory { return directory(t, reg, nil) }
	})
}
