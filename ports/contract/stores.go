package contract

import (
	"errors"
	"testing"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// TrustStore checks the promises of ports.TrustStore. open returns a new,
// empty store for each subtest.
func TrustStore(t *testing.T, open func(t *testing.T) ports.TrustStore) {
	t.Run("get of an unknown name", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		if _, err := s.Get(ctx, domain.MustUsername("nobody")); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("Get: %v, want ErrNotFound", err)
		}
		if err := s.SetVerified(ctx, domain.MustUsername("nobody"), true); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("SetVerified: %v, want ErrNotFound", err)
		}
		if l, err := s.List(ctx); err != nil || len(l) != 0 {
			t.Fatalf("List of an empty store: %v, %v", l, err)
		}
	})

	t.Run("pin on first use, again is a no-op", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		bob := ident(t, "bob")
		if err := s.Pin(ctx, bob, at(1)); err != nil {
			t.Fatalf("Pin: %v", err)
		}
		if err := s.SetVerified(ctx, bob.Name(), true); err != nil {
			t.Fatal(err)
		}
		if err := s.Pin(ctx, bob, at(2)); err != nil {
			t.Fatalf("Pin of the same key: %v", err)
		}
		c, err := s.Get(ctx, domain.MustUsername("BOB"))
		if err != nil {
			t.Fatalf("Get by another spelling: %v", err)
		}
		if !c.Identity.SameKey(bob.PublicKey()) || !c.Identity.Name().Equal(bob.Name()) {
			t.Fatal("Get returned another identity")
		}
		if !c.PinnedAt.Equal(at(1)) || !c.Verified {
			t.Fatalf("a second Pin changed the contact: pinned %v verified %v; want %v true", c.PinnedAt, c.Verified, at(1))
		}
	})

	t.Run("pin of another key is a key change and stores nothing", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		bob, mallory := ident(t, "bob"), ident(t, "b0b")
		if err := s.Pin(ctx, bob, at(1)); err != nil {
			t.Fatal(err)
		}
		err := s.Pin(ctx, mallory, at(2))
		var kc *domain.KeyChangedError
		if !errors.As(err, &kc) {
			t.Fatalf("Pin of another key for a look-alike name: %v, want *KeyChangedError", err)
		}
		if kc.Old != bob.Fingerprint() || kc.New != mallory.Fingerprint() || !kc.Name.Equal(bob.Name()) {
			t.Fatalf("KeyChangedError %+v does not name the old and new keys", kc)
		}
		c, err := s.Get(ctx, bob.Name())
		if err != nil || !c.Identity.SameKey(bob.PublicKey()) {
			t.Fatalf("after a refused pin the contact holds another key (%v)", err)
		}
	})

	t.Run("replace pins the new key and resets verified", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		old, renewed := ident(t, "bob"), ident(t, "bob")
		if err := s.Pin(ctx, old, at(1)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetVerified(ctx, old.Name(), true); err != nil {
			t.Fatal(err)
		}
		if err := s.Replace(ctx, renewed, at(5)); err != nil {
			t.Fatalf("Replace: %v", err)
		}
		c, err := s.Get(ctx, old.Name())
		if err != nil {
			t.Fatal(err)
		}
		if !c.Identity.SameKey(renewed.PublicKey()) || c.Verified || !c.PinnedAt.Equal(at(5)) {
			t.Fatalf("after Replace: new key %v, verified %v, pinned %v", c.Identity.SameKey(renewed.PublicKey()), c.Verified, c.PinnedAt)
		}
		if err := s.Pin(ctx, renewed, at(6)); err != nil {
			t.Fatalf("Pin of the replaced key: %v", err)
		}
		if err := s.Replace(ctx, ident(t, "dave"), at(7)); err != nil {
			t.Fatalf("Replace of an unpinned name: %v", err)
		}
	})

	t.Run("verified flag and list", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		ids := []domain.Identity{ident(t, "bob"), ident(t, "carol"), ident(t, "dave")}
		for _, id := range ids {
			if err := s.Pin(ctx, id, at(1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetVerified(ctx, ids[1].Name(), true); err != nil {
			t.Fatal(err)
		}
		list, err := s.List(ctx)
		if err != nil || len(list) != len(ids) {
			t.Fatalf("List: %d contacts (%v), want %d", len(list), err, len(ids))
		}
		for _, c := range list {
			want := c.Identity.Name().Equal(ids[1].Name())
			if c.Verified != want {
				t.Fatalf("%s verified = %v, want %v", c.Identity.Name(), c.Verified, want)
			}
		}
		if err := s.SetVerified(ctx, ids[1].Name(), false); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.Get(ctx, ids[1].Name()); c.Verified {
			t.Fatal("SetVerified(false) kept the flag")
		}
	})
}

// KeyStore checks the promises of ports.KeyStore. open returns a new, empty
// key store for each subtest.
func KeyStore(t *testing.T, open func(t *testing.T) ports.KeyStore) {
	t.Run("empty store has no identity", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		if _, err := s.Load(ctx); !errors.Is(err, domain.ErrNoIdentity) {
			t.Fatalf("Load: %v, want ErrNoIdentity", err)
		}
	})
	t.Run("save then load", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		me := local(t, "alice")
		if err := s.Save(ctx, me); err != nil {
			t.Fatalf("Save: %v", err)
		}
		got, err := s.Load(ctx)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if !got.Name().Equal(me.Name()) || got.Name().String() != me.Name().String() || !got.SameKey(me.PublicKey()) || !got.PrivateKey().Equal(me.PrivateKey()) {
			t.Fatal("Load returned another identity than saved")
		}
		sig := got.Sign([]byte("x"))
		if err := domain.Verify(me.PublicKey(), []byte("x"), sig); err != nil {
			t.Fatalf("loaded key cannot sign: %v", err)
		}
	})
	t.Run("save replaces", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		first, second := local(t, "alice"), local(t, "alice2")
		if err := s.Save(ctx, first); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, second); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx)
		if err != nil || !got.SameKey(second.PublicKey()) || !got.Name().Equal(second.Name()) {
			t.Fatalf("after a second Save Load returned the first identity (%v)", err)
		}
	})
}
