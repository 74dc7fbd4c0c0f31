package contract

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func mailID(t *testing.T) ports.MailID {
	t.Helper()
	var id ports.MailID
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	return id
}

func mail(t *testing.T, to string, blob string, deposited, expires time.Time) ports.Mail {
	return ports.Mail{ID: mailID(t), To: domain.MustUsername(to), Blob: []byte(blob), Deposited: deposited, Expires: expires}
}

func mailBlobs(ms []ports.Mail) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Blob)
	}
	return out
}

// MailboxStore checks the promises of ports.MailboxStore. open returns a
// new, empty store for each subtest. It is self-contained, so every
// implementation (the embedded file store, memory, Redis) runs it as is.
func MailboxStore(t *testing.T, open func(t *testing.T) ports.MailboxStore) {
	big := ports.MailQuota{Count: 1000, Bytes: 1 << 20}

	t.Run("put, list oldest first, per recipient", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		for i, b := range []string{"one", "two", "three"} {
			if err := s.Put(ctx, mail(t, "bob", b, at(i), at(1000)), big); err != nil {
				t.Fatalf("Put %s: %v", b, err)
			}
		}
		if err := s.Put(ctx, mail(t, "carol", "for carol", at(5), at(1000)), big); err != nil {
			t.Fatal(err)
		}
		got, err := s.List(ctx, domain.MustUsername("BOB"), at(10), 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"one", "two", "three"}; !slices.Equal(mailBlobs(got), want) {
			t.Fatalf("List bob: %q, want %q", mailBlobs(got), want)
		}
		for _, m := range got {
			if !m.To.Equal(domain.MustUsername("bob")) || !m.Expires.Equal(at(1000)) || m.Deposited.IsZero() {
				t.Fatalf("listed mail %+v lost its fields", m)
			}
		}
		got, err = s.List(ctx, domain.MustUsername("bob"), at(10), 2)
		if err != nil || !slices.Equal(mailBlobs(got), []string{"one", "two"}) {
			t.Fatalf("List with limit 2: %q, %v", mailBlobs(got), err)
		}
		got, err = s.List(ctx, domain.MustUsername("dave"), at(10), 0)
		if err != nil || len(got) != 0 {
			t.Fatalf("List of an empty mailbox: %v, %v", got, err)
		}
	})

	t.Run("blobs are copied in and out", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		m := mail(t, "bob", "original", at(0), at(100))
		if err := s.Put(ctx, m, big); err != nil {
			t.Fatal(err)
		}
		copy(m.Blob, "XXXXXXXX")
		got, _ := s.List(ctx, m.To, at(1), 0)
		if len(got) != 1 || string(got[0].Blob) != "original" || got[0].ID != m.ID {
			t.Fatalf("stored mail changed with the caller's slice: %q", mailBlobs(got))
		}
		copy(got[0].Blob, "YYYYYYYY")
		again, _ := s.List(ctx, m.To, at(1), 0)
		if string(again[0].Blob) != "original" {
			t.Fatalf("stored mail changed with a listed slice: %q", again[0].Blob)
		}
	})

	t.Run("expired mail is not listed and Expire removes it", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		_ = s.Put(ctx, mail(t, "bob", "short", at(0), at(10)), big)
		_ = s.Put(ctx, mail(t, "bob", "long", at(1), at(100)), big)
		_ = s.Put(ctx, mail(t, "carol", "short too", at(2), at(20)), big)
		got, _ := s.List(ctx, domain.MustUsername("bob"), at(10), 0)
		if !slices.Equal(mailBlobs(got), []string{"long"}) {
			t.Fatalf("List at the expiry: %q, want only the unexpired one", mailBlobs(got))
		}
		n, err := s.Expire(ctx, at(50))
		if err != nil || n != 2 {
			t.Fatalf("Expire: %d, %v; want 2", n, err)
		}
		if n, _ := s.Expire(ctx, at(50)); n != 0 {
			t.Fatalf("Expire again: %d, want 0", n)
		}
		got, _ = s.List(ctx, domain.MustUsername("bob"), at(0), 0)
		if !slices.Equal(mailBlobs(got), []string{"long"}) {
			t.Fatalf("after Expire, even listed as of before: %q", mailBlobs(got))
		}
	})

	t.Run("delete only the recipient's own ids, unknown ignored", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		a, b := mail(t, "bob", "a", at(0), at(100)), mail(t, "bob", "b", at(1), at(100))
		c := mail(t, "carol", "c", at(2), at(100))
		for _, m := range []ports.Mail{a, b, c} {
			if err := s.Put(ctx, m, big); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, domain.MustUsername("bob"), []ports.MailID{a.ID, c.ID, mailID(t)}); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		got, _ := s.List(ctx, domain.MustUsername("bob"), at(3), 0)
		if !slices.Equal(mailBlobs(got), []string{"b"}) {
			t.Fatalf("bob after Delete: %q", mailBlobs(got))
		}
		got, _ = s.List(ctx, domain.MustUsername("carol"), at(3), 0)
		if !slices.Equal(mailBlobs(got), []string{"c"}) {
			t.Fatalf("bob deleted carol's mail: %q", mailBlobs(got))
		}
	})

	t.Run("quota by count and by bytes; expired mail does not count", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		q := ports.MailQuota{Count: 2, Bytes: 10}
		if err := s.Put(ctx, mail(t, "bob", "1234", at(0), at(5)), q); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, mail(t, "bob", "5678", at(1), at(100)), q); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, mail(t, "bob", "9", at(2), at(100)), q); !errors.Is(err, ports.ErrMailboxFull) {
			t.Fatalf("third mail over a count of 2: %v, want ErrMailboxFull", err)
		}
		if err := s.Put(ctx, mail(t, "carol", "other box", at(2), at(100)), q); err != nil {
			t.Fatalf("another recipient's quota is separate: %v", err)
		}
		// At 6 the first mail expired: it no longer counts, by count or bytes.
		if err := s.Put(ctx, mail(t, "bob", "abcdefg", at(6), at(100)), q); !errors.Is(err, ports.ErrMailboxFull) {
			t.Fatalf("4+7 bytes over a quota of 10: %v, want ErrMailboxFull", err)
		}
		if err := s.Put(ctx, mail(t, "bob", "abcdef", at(6), at(100)), q); err != nil {
			t.Fatalf("4+6 bytes once the first expired: %v", err)
		}
		got, _ := s.List(ctx, domain.MustUsername("bob"), at(6), 0)
		if !slices.Equal(mailBlobs(got), []string{"5678", "abcdef"}) {
			t.Fatalf("refused mail was stored: %q", mailBlobs(got))
		}
	})

	t.Run("concurrent puts respect the quota", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		q := ports.MailQuota{Count: 10, Bytes: 1 << 20}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := range 40 {
			wg.Go(func() {
				if err := s.Put(ctx, mail(t, "bob", fmt.Sprint(i), at(0), at(100)), q); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				} else if !errors.Is(err, ports.ErrMailboxFull) {
					t.Errorf("Put: %v", err)
				}
			})
		}
		wg.Wait()
		got, _ := s.List(ctx, domain.MustUsername("bob"), at(1), 0)
		if ok != 10 || len(got) != 10 {
			t.Fatalf("%d puts accepted, %d listed; want 10 and 10", ok, len(got))
		}
	})
}

// PrekeyStore checks the promises of ports.PrekeyStore. open returns a new,
// empty store for each subtest.
func PrekeyStore(t *testing.T, open func(t *testing.T) ports.PrekeyStore) {
	key := func(name string, id uint32, pub string) ports.SignedPrekey {
		return ports.SignedPrekey{Name: domain.MustUsername(name), KeyID: id, Public: []byte(pub),
			Suite: "test-suite", Created: at(int(id)), Expires: at(int(id) + 1000), Signature: bytes.Repeat([]byte{byte(id)}, 64)}
	}
	t.Run("unknown name", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		if _, err := s.GetPrekey(ctx, domain.MustUsername("nobody")); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("GetPrekey: %v, want ErrNotFound", err)
		}
	})
	t.Run("put, get by normalised name, replace", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		k1 := key("bob", 1, "first public key")
		if err := s.PutPrekey(ctx, k1); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPrekey(ctx, key("carol", 7, "carol's")); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetPrekey(ctx, domain.MustUsername("Bob"))
		if err != nil {
			t.Fatal(err)
		}
		if got.KeyID != 1 || string(got.Public) != "first public key" || got.Suite != "test-suite" ||
			!got.Created.Equal(k1.Created) || !got.Expires.Equal(k1.Expires) || !bytes.Equal(got.Signature, k1.Signature) ||
			!got.Name.Equal(k1.Name) {
			t.Fatalf("GetPrekey: %+v, want %+v", got, k1)
		}
		if err := s.PutPrekey(ctx, key("bob", 2, "second")); err != nil {
			t.Fatal(err)
		}
		got, _ = s.GetPrekey(ctx, domain.MustUsername("bob"))
		if got.KeyID != 2 || string(got.Public) != "second" {
			t.Fatalf("after replacing: %+v", got)
		}
		got, _ = s.GetPrekey(ctx, domain.MustUsername("carol"))
		if got.KeyID != 7 {
			t.Fatalf("carol's key changed with bob's: %+v", got)
		}
	})
}

// MailKeyStore checks the promises of ports.MailKeyStore. open returns a
// new, empty store for each subtest.
func MailKeyStore(t *testing.T, open func(t *testing.T) ports.MailKeyStore) {
	key := func(id uint32, created int) ports.MailKey {
		return ports.MailKey{Prekey: ports.SignedPrekey{KeyID: id, Public: []byte(fmt.Sprint("public ", id)), Suite: "suite",
			Created: at(created), Expires: at(created + 100), Signature: bytes.Repeat([]byte{byte(id)}, 64)},
			Private: []byte(fmt.Sprint("private ", id)), DeleteAfter: at(created + 1000)}
	}
	t.Run("save, list oldest first, replace, delete", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		if ks, err := s.MailKeys(ctx); err != nil || len(ks) != 0 {
			t.Fatalf("empty store: %v, %v", ks, err)
		}
		for _, k := range []ports.MailKey{key(2, 20), key(1, 10), key(4000000000, 30)} {
			if err := s.SaveMailKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		ks, err := s.MailKeys(ctx)
		if err != nil || len(ks) != 3 {
			t.Fatalf("MailKeys: %d, %v", len(ks), err)
		}
		for i, id := range []uint32{1, 2, 4000000000} {
			k, want := ks[i], key(id, []int{10, 20, 30}[i])
			if k.Prekey.KeyID != id || string(k.Private) != string(want.Private) || string(k.Prekey.Public) != string(want.Prekey.Public) ||
				!bytes.Equal(k.Prekey.Signature, want.Prekey.Signature) || k.Prekey.Suite != "suite" ||
				!k.Prekey.Created.Equal(want.Prekey.Created) || !k.Prekey.Expires.Equal(want.Prekey.Expires) || !k.DeleteAfter.Equal(want.DeleteAfter) {
				t.Fatalf("key %d: %+v, want %+v", i, k, want)
			}
		}
		again := key(2, 20)
		again.Private = []byte("replaced")
		if err := s.SaveMailKey(ctx, again); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteMailKey(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteMailKey(ctx, 99); err != nil {
			t.Fatalf("deleting an unknown key: %v", err)
		}
		ks, _ = s.MailKeys(ctx)
		if len(ks) != 2 || ks[0].Prekey.KeyID != 2 || string(ks[0].Private) != "replaced" || ks[1].Prekey.KeyID != 4000000000 {
			t.Fatalf("after replace and delete: %+v", ks)
		}
	})
}
