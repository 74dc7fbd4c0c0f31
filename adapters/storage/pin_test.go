package storage_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/domain"
)

// TestPinOfAPinnedKeyWritesNothing: pinning the key already pinned (every
// send does it) is answered from a read, without a commit or an fsync, and a
// different key is still refused.
func TestPinOfAPinnedKeyWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	contacts := storage.NewContacts(s)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	id, _ := domain.NewIdentity(domain.MustUsername("bob"), pub)
	if err := contacts.Pin(ctx, id, time.Now()); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	for i := 0; i < 100; i++ {
		if err := contacts.Pin(ctx, id, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if after := s.Stats(); after.Commits != before.Commits || after.Syncs != before.Syncs {
		t.Fatalf("pinning a pinned key committed: %+v -> %+v", before, after)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	changed, _ := domain.NewIdentity(domain.MustUsername("bob"), other)
	var kc *domain.KeyChangedError
	if err := contacts.Pin(ctx, changed, time.Now()); !errors.As(err, &kc) {
		t.Fatalf("another key: %v, want KeyChangedError", err)
	}
}
