package seal_test

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/seal"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func local(t testing.TB, name string) domain.LocalIdentity {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := domain.NewLocalIdentity(domain.MustUsername(name), priv)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type keyring map[uint32][]byte

func (k keyring) get(id uint32) ([]byte, bool) { b, ok := k[id]; return b, ok }

func prekey(t testing.TB, s *seal.Sealer, owner domain.LocalIdentity, id uint32, ring keyring) ports.SignedPrekey {
	t.Helper()
	pub, priv, err := s.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ring[id] = priv
	now := time.Now()
	return ports.SignedPrekey{Name: owner.Name(), KeyID: id, Public: pub, Suite: s.Suite(), Created: now, Expires: now.Add(time.Hour)}
}

func letter(alice, bob domain.LocalIdentity, body string) ports.Letter {
	return ports.Letter{From: alice.Identity, To: bob.Identity, Expires: time.Now().Add(time.Hour).Truncate(time.Second),
		Envelope: ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), SentAt: time.Now().UTC(), Body: body}}
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := seal.New()
	alice, bob := local(t, "alice"), local(t, "bob")
	ring := keyring{}
	k := prekey(t, s, bob, 7, ring)
	offer := ports.Envelope{Kind: ports.KindOffer, TransferID: domain.TransferID{1, 2, 3},
		Manifest: domain.Manifest{Name: "dir", Files: []domain.FileEntry{{Path: "dir/a.txt", Size: 12, Hash: [32]byte{9}}, {Path: "dir/b", Size: 0}}}}
	for _, env := range []ports.Envelope{letter(alice, bob, "hello bob ✓").Envelope, {Kind: ports.KindDelivered, MessageID: domain.NewMessageID()}, offer} {
		l := letter(alice, bob, "")
		l.Envelope = env
		blob, err := s.Seal(alice, k, l)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Open(bob.Identity, ring.get, blob, time.Now())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !got.From.SameKey(alice.PublicKey()) || !got.From.Name().Equal(alice.Name()) || !got.Expires.Equal(l.Expires) {
			t.Fatalf("letter header: %+v", got)
		}
		g, w := got.Envelope, l.Envelope
		if g.Kind != w.Kind || g.MessageID != w.MessageID || !g.SentAt.Equal(w.SentAt) || g.Body != w.Body || g.TransferID != w.TransferID ||
			g.Manifest.Name != w.Manifest.Name || len(g.Manifest.Files) != len(w.Manifest.Files) {
			t.Fatalf("envelope: got %+v, want %+v", g, w)
		}
		for i := range g.Manifest.Files {
			if g.Manifest.Files[i] != w.Manifest.Files[i] {
				t.Fatalf("file %d: %+v", i, g.Manifest.Files[i])
			}
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	s := seal.New()
	alice, bob, carol := local(t, "alice"), local(t, "bob"), local(t, "carol")
	ring, carolRing := keyring{}, keyring{}
	k := prekey(t, s, bob, 1, ring)
	ck := prekey(t, s, carol, 1, carolRing)
	blob, err := s.Seal(alice, k, letter(alice, bob, "for bob only"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("flipped bytes", func(t *testing.T) {
		// The header, the encapsulation, the ciphertext and the tag: every
		// 11th byte and the last 32 (each open costs a decapsulation).
		for i := range blob {
			if i%11 != 0 && i < len(blob)-32 && i > 8 {
				continue
			}
			bad := append([]byte(nil), blob...)
			bad[i] ^= 0x40
			if _, err := s.Open(bob.Identity, ring.get, bad, time.Now()); !errors.Is(err, ports.ErrMailUnreadable) {
				t.Fatalf("byte %d flipped: %v, want ErrMailUnreadable", i, err)
			}
		}
	})
	t.Run("re-deposited to another recipient", func(t *testing.T) {
		// Carol's key with the same ID cannot open it, nor can carol with bob's key.
		if _, err := s.Open(carol.Identity, carolRing.get, blob, time.Now()); !errors.Is(err, ports.ErrMailUnreadable) {
			t.Fatalf("carol opened bob's mail: %v", err)
		}
		if _, err := s.Open(carol.Identity, ring.get, blob, time.Now()); !errors.Is(err, ports.ErrMailUnreadable) {
			t.Fatalf("opened with bob's key as carol: %v", err)
		}
		_ = ck
	})
	t.Run("a letter to bob sealed to carol's key", func(t *testing.T) {
		// The sender's signature covers the recipient: re-sealing a letter
		// to bob for carol is caught even by a sender who tries.
		if _, err := s.Seal(alice, ck, letter(alice, bob, "x")); err == nil {
			t.Fatal("sealed a letter to bob with carol's key")
		}
	})
	t.Run("forged sender", func(t *testing.T) {
		l := letter(alice, bob, "I am alice")
		l.From = carol.Identity
		if _, err := s.Seal(alice, k, l); err == nil {
			t.Fatal("sealed a letter naming another sender")
		}
	})
	t.Run("expired", func(t *testing.T) {
		if _, err := s.Open(bob.Identity, ring.get, blob, time.Now().Add(2*time.Hour)); !errors.Is(err, ports.ErrMailExpired) {
			t.Fatalf("Open after expiry: %v, want ErrMailExpired", err)
		}
	})
	t.Run("deleted key", func(t *testing.T) {
		if _, err := s.Open(bob.Identity, keyring{}.get, blob, time.Now()); !errors.Is(err, ports.ErrMailUnreadable) {
			t.Fatalf("Open without the key: %v", err)
		}
	})
}

func FuzzOpen(f *testing.F) {
	s := seal.New()
	alice, bob := local(f, "alice"), local(f, "bob")
	ring := keyring{}
	k := prekey(f, s, bob, 1, ring)
	blob, err := s.Seal(alice, k, letter(alice, bob, "seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob)
	f.Add([]byte{1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := s.Open(bob.Identity, ring.get, b, time.Now())
		if err == nil && !l.To.SameKey(bob.PublicKey()) {
			t.Fatal("opened a letter for someone else")
		}
	})
}
