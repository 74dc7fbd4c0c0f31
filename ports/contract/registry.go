package contract

import (
	"crypto/sha256"
	"errors"
	"slices"
	"testing"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// AccountStore checks the promises of ports.AccountStore. open returns a
// new, empty store for each subtest.
func AccountStore(t *testing.T, open func(t *testing.T) ports.AccountStore) {
	t.Run("get of an unknown name", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		if _, err := s.Get(ctx, domain.MustUsername("nobody")); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("Get: %v, want ErrNotFound", err)
		}
		if n, err := s.Count(ctx); err != nil || n != 0 {
			t.Fatalf("Count of an empty store: %d, %v", n, err)
		}
	})

	t.Run("bind on first use, same key again, other key refused", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		alice := ident(t, "alice")
		if err := s.Bind(ctx, alice, at(1)); err != nil {
			t.Fatalf("Bind: %v", err)
		}
		if err := s.Bind(ctx, alice, at(2)); err != nil {
			t.Fatalf("Bind of the same key again: %v", err)
		}
		for _, name := range []string{"alice", "ALICE", "a1ice", "аlice"} { // the last with a Cyrillic а
			if err := s.Bind(ctx, ident(t, name), at(3)); !errors.Is(err, domain.ErrNameTaken) {
				t.Fatalf("Bind of %q with another key: %v, want ErrNameTaken", name, err)
			}
		}
		got, err := s.Get(ctx, domain.MustUsername("Alice"))
		if err != nil || !got.SameKey(alice.PublicKey()) || got.Name().String() != alice.Name().String() {
			t.Fatalf("Get returned %v (%v), want alice's identity", got.Name(), err)
		}
		if err := s.Bind(ctx, ident(t, "bob"), at(4)); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Count(ctx); err != nil || n != 2 {
			t.Fatalf("Count: %d, %v; want 2", n, err)
		}
	})
}

// PresenceStore checks the promises of ports.PresenceStore. open returns a
// new, empty store for each subtest.
func PresenceStore(t *testing.T, open func(t *testing.T) ports.PresenceStore) {
	presence := func(id domain.Identity, ep string, sec int) ports.Presence {
		return ports.Presence{
			Identity:  id,
			Endpoints: domain.Endpoints{Link: []string{ep + ":1", ep + ":2"}, File: []string{ep + ":3"}},
			TokenHash: sha256.Sum256([]byte(ep)),
			ExpiresAt: at(sec + 30),
			Since:     at(sec),
		}
	}
	same := func(t *testing.T, got, want ports.Presence) {
		t.Helper()
		switch {
		case !got.Identity.SameKey(want.Identity.PublicKey()) || !got.Identity.Name().Equal(want.Identity.Name()):
			t.Fatal("identity differs")
		case !slices.Equal(got.Endpoints.Link, want.Endpoints.Link) || !slices.Equal(got.Endpoints.File, want.Endpoints.File):
			t.Fatalf("endpoints %v, want %v", got.Endpoints, want.Endpoints)
		case got.TokenHash != want.TokenHash:
			t.Fatal("token hash differs")
		case !got.ExpiresAt.Equal(want.ExpiresAt) || !got.Since.Equal(want.Since):
			t.Fatalf("times %v %v, want %v %v", got.Since, got.ExpiresAt, want.Since, want.ExpiresAt)
		}
	}

	t.Run("get of an absent name", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		if _, err := s.Get(ctx, domain.MustUsername("nobody")); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("Get: %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, domain.MustUsername("nobody")); err != nil {
			t.Fatalf("Delete of an absent name: %v", err)
		}
		if l, err := s.List(ctx); err != nil || len(l) != 0 {
			t.Fatalf("List of an empty store: %d, %v", len(l), err)
		}
	})

	t.Run("put, get, replace, delete", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		alice := ident(t, "alice")
		p := presence(alice, "10.0.0.1", 1)
		if err := s.Put(ctx, p); err != nil {
			t.Fatalf("Put: %v", err)
		}
		got, err := s.Get(ctx, domain.MustUsername("ALICE"))
		if err != nil {
			t.Fatalf("Get by another spelling: %v", err)
		}
		same(t, got, p)
		moved := presence(alice, "10.0.0.2", 5)
		if err := s.Put(ctx, moved); err != nil {
			t.Fatal(err)
		}
		got, err = s.Get(ctx, alice.Name())
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, moved)
		if l, _ := s.List(ctx); len(l) != 1 {
			t.Fatalf("List after a replacing Put: %d presences, want 1", len(l))
		}
		if err := s.Delete(ctx, domain.MustUsername("Alice")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, alice.Name()); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
		}
	})

	t.Run("list every presence", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		want := map[string]ports.Presence{}
		for i, name := range []string{"alice", "bob", "carol"} {
			p := presence(ident(t, name), name, i)
			want[p.Identity.Name().Key()] = p
			if err := s.Put(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		l, err := s.List(ctx)
		if err != nil || len(l) != len(want) {
			t.Fatalf("List: %d presences (%v), want %d", len(l), err, len(want))
		}
		for _, p := range l {
			w, ok := want[p.Identity.Name().Key()]
			if !ok {
				t.Fatalf("List returned unknown %s", p.Identity.Name())
			}
			same(t, p, w)
			delete(want, p.Identity.Name().Key())
		}
	})
}
