package storage_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/domain"
)

// TestUpgradeMakesPinnedNamesContacts: a profile from before contacts
// (schema 2) keeps everyone the user talked to as a contact, so the
// upgrade loses nobody's messages to the requests.
func TestUpgradeMakesPinnedNamesContacts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	insert := fmt.Sprintf(`INSERT INTO contacts (name_key, name, public_key, verified, pinned_sec, pinned_nsec)
		VALUES ('bob', 'bob', x'%x', 1, 1700000000, 0)`, []byte(pub))
	if err := storage.MigrateForTest(dir, 2, insert); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, storage.DatabaseFile), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	c, err := storage.NewContacts(s).Get(context.Background(), domain.MustUsername("bob"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsContact() || !c.Verified || !c.Identity.SameKey(pub) {
		t.Fatalf("after the upgrade bob is %v (verified %v): want a verified contact", c.Relation, c.Verified)
	}
}

// TestRequestsSurviveReopening: what strangers sent is still held after
// the profile is closed and opened again.
func TestRequestsSurviveReopening(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	eve, err := domain.NewIdentity(domain.MustUsername("eve"), pub)
	if err != nil {
		t.Fatal(err)
	}
	m, err := domain.NewIncomingMessage(domain.NewMessageID(), eve.Name(), domain.MustUsername("alice"), t0, "hello")
	if err != nil {
		t.Fatal(err)
	}
	s, cleanup, err := storage.Open(storage.ProfileDir(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storage.NewQuarantine(s).Hold(context.Background(), domain.NewHeldChat(eve, m, t0), domain.DefaultQuarantineLimits); err != nil {
		t.Fatal(err)
	}
	cleanup()
	held, err := storage.NewQuarantine(openStore(t, dir)).Held(context.Background(), eve.Name())
	if err != nil || len(held) != 1 || held[0].Message.ID() != m.ID() || held[0].Message.Body() != "hello" {
		t.Fatalf("after reopening: %+v (%v)", held, err)
	}
}
