package contract

// The Directory suite. Run it from an adapter's tests:
//
//	func TestDirectoryContract(t *testing.T) {
//		contract.Directory(t, func(t *testing.T) contract.DirectoryFactory {
//			// one registry per subtest, shared by every directory the
//			// factory makes
//			reg := startRegistry(t)
//			return func(t *testing.T) ports.Directory {
//				d, cleanup, err := NewDirectory(reg.URL, ...)
//				if err != nil { t.Fatal(err) }
//				t.Cleanup(cleanup)
//				return d
//			}
//		})
//	}

import (
	"errors"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// DirectoryFactory makes a new client directory of one registry.
type DirectoryFactory func(t *testing.T) ports.Directory

// dirWait bounds every wait of the suite; generous for a loaded machine.
const dirWait = 30 * time.Second

// dirStream reads a Watch channel.
type dirStream struct {
	t  *testing.T
	ch <-chan ports.DirectoryEvent
}

func dirWatch(t *testing.T, d ports.Directory) dirStream {
	t.Helper()
	ch, err := d.Watch(ctxFor(t))
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	return dirStream{t, ch}
}

// next skips events until one that match accepts.
func (s dirStream) next(what string, match func(ports.DirectoryEvent) bool) ports.DirectoryEvent {
	s.t.Helper()
	deadline := time.After(dirWait)
	for {
		select {
		case ev, ok := <-s.ch:
			if !ok {
				s.t.Fatalf("the Watch channel closed while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			s.t.Fatalf("no %s within %v", what, dirWait)
		}
	}
}

func dirPresence(id domain.Identity, online bool) func(ports.DirectoryEvent) bool {
	return func(ev ports.DirectoryEvent) bool {
		return ev.Kind == ports.PeerChanged && ev.Peer.Name().Equal(id.Name()) && ev.Peer.Online == online
	}
}

// dirEndpoints are private addresses, which every registry publishes
// (loopback ones only from a loopback registration, docs/registry-api.md §9).
func dirEndpoints() domain.Endpoints {
	return domain.Endpoints{Link: []string{"10.0.0.1:7001"}, File: []string{"10.0.0.1:7002"}}
}

// Directory checks the promises of ports.Directory. newWorld is called once
// per subtest and returns the factory of that subtest's directories, all
// clients of one fresh registry.
func Directory(t *testing.T, newWorld func(t *testing.T) DirectoryFactory) {
	t.Run("register, lookup and online", func(t *testing.T) {
		ctx, newDir := ctxFor(t), newWorld(t)
		alice, d := local(t, "alice"), newDir(t)
		if err := d.Register(ctx, alice, dirEndpoints()); err != nil {
			t.Fatalf("Register: %v", err)
		}
		p, err := newDir(t).Lookup(ctx, domain.MustUsername("ALICE"))
		if err != nil {
			t.Fatalf("Lookup by another spelling: %v", err)
		}
		if !p.Online || !p.Identity.SameKey(alice.PublicKey()) || len(p.Endpoints.Link) == 0 || p.Endpoints.Link[0] != "10.0.0.1:7001" {
			t.Fatalf("Lookup: online %v, key matches %v, endpoints %v", p.Online, p.Identity.SameKey(alice.PublicKey()), p.Endpoints)
		}
		online, err := d.Online(ctx)
		if err != nil || len(online) != 1 || !online[0].Name().Equal(alice.Name()) {
			t.Fatalf("Online: %v, %v; want alice alone", online, err)
		}
		if _, err := d.Lookup(ctx, domain.MustUsername("nobody")); !errors.Is(err, domain.ErrUnknownPeer) {
			t.Fatalf("Lookup of an unknown name: %v, want ErrUnknownPeer", err)
		}
	})

	t.Run("a second key cannot take a name", func(t *testing.T) {
		ctx, newDir := ctxFor(t), newWorld(t)
		if err := newDir(t).Register(ctx, local(t, "alice"), dirEndpoints()); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"alice", "Alice", "a1ice"} {
			if err := newDir(t).Register(ctx, local(t, name), dirEndpoints()); !errors.Is(err, domain.ErrNameTaken) {
				t.Fatalf("Register of %q with another key: %v, want ErrNameTaken", name, err)
			}
		}
	})

	t.Run("watch is live: connected, the online set, then changes", func(t *testing.T) {
		ctx, newDir := ctxFor(t), newWorld(t)
		alice, bob := local(t, "alice"), local(t, "bob")
		da, db := newDir(t), newDir(t)
		if err := db.Register(ctx, bob, dirEndpoints()); err != nil {
			t.Fatal(err)
		}
		w := dirWatch(t, db)
		select {
		case ev := <-w.ch:
			if ev.Kind != ports.Connected {
				t.Fatalf("first event is kind %d, want Connected", ev.Kind)
			}
		case <-time.After(dirWait):
			t.Fatal("no first event")
		}
		w.next("bob in the online set", dirPresence(bob.Identity, true))
		if err := da.Register(ctx, alice, dirEndpoints()); err != nil {
			t.Fatal(err)
		}
		ev := w.next("alice online", dirPresence(alice.Identity, true))
		if !ev.Peer.Identity.SameKey(alice.PublicKey()) {
			t.Fatal("the event carries another key than alice's")
		}
		if err := da.Unregister(ctx); err != nil {
			t.Fatalf("Unregister: %v", err)
		}
		w.next("alice offline", dirPresence(alice.Identity, false))
		if p, err := db.Lookup(ctx, alice.Name()); err != nil || p.Online {
			t.Fatalf("Lookup after Unregister: online %v, %v; want known and offline", p.Online, err)
		}
	})
}
