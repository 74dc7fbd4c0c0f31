package storage_test

import (
	"database/sql"
	"errors"
	"os"
	"testing"

	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

func TestMailKeyStoreContract(t *testing.T) {
	contract.MailKeyStore(t, func(t *testing.T) ports.MailKeyStore { return storage.NewMailKeys(openStore(t, t.TempDir())) })
}

// TestStoredMessagesStayInTheOutbox: a message parked in the peer's
// mailbox is still ours to deliver (directly too) until acknowledged, and
// a later direct write does not take it back to "sent".
func TestStoredMessagesStayInTheOutbox(t *testing.T) {
	ctx := ctxFor(t)
	dir := t.TempDir()
	s := mustOpen(t, dir)
	m := out(t, bob, "parked", t0)
	if err := s.SaveOutgoing(ctx, m); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SetState(ctx, m.ID(), domain.MessageStored); err != nil || got.State() != domain.MessageStored {
		t.Fatalf("SetState stored: %v, %v", got.State(), err)
	}
	if _, err := s.SetState(ctx, m.ID(), domain.MessageSent); !errors.Is(err, domain.ErrInvalidTransition) {
		t.Fatalf("stored → sent: %v, want ErrInvalidTransition", err)
	}
	mustClose(t, s)
	s = mustOpen(t, dir)
	defer mustClose(t, s)
	box, err := s.Outbox(ctx, bob)
	if err != nil || len(box) != 1 || box[0].State() != domain.MessageStored {
		t.Fatalf("outbox after reopen: %v, %v", box, err)
	}
	if peers, _ := s.OutboxPeers(ctx); len(peers) != 1 || !peers[0].Equal(bob) {
		t.Fatalf("OutboxPeers: %v", peers)
	}
	if got, err := s.SetState(ctx, m.ID(), domain.MessageDelivered); err != nil || got.State() != domain.MessageDelivered {
		t.Fatalf("stored → delivered: %v, %v", got.State(), err)
	}
	if box, _ := s.Outbox(ctx, bob); len(box) != 0 {
		t.Fatalf("delivered message still in the outbox: %v", box)
	}
}

// TestMigrationToVersion4KeepsHistoryAndSearch: a profile written at
// schema version 2 opens at version 4 with every message, its seq (so the
// search index still finds it) and state, and takes the stored state.
func TestMigrationToVersion4KeepsHistoryAndSearch(t *testing.T) {
	ctx := ctxFor(t)
	dir := t.TempDir()
	if err := storage.MigrateToForTest(dir, 2); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dir+"/"+storage.DatabaseFile)
	if err != nil {
		t.Fatal(err)
	}
	id := domain.NewMessageID()
	if _, err := db.Exec(`INSERT INTO messages (seq, id, dir, sender, sender_key, recipient, peer_key, sent_sec, sent_nsec, body, state)
		VALUES (7, ?, 'out', 'alice', 'alice', 'bob', 'bob', ?, 0, 'an old unicorn message', 'sent')`, id[:], t0.Unix()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO messages_fts (rowid, body) VALUES (7, 'an old unicorn message'); UPDATE fts_progress SET last_seq = 7`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.Chmod(dir+"/"+storage.DatabaseFile, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir)
	defer mustClose(t, s)
	box, err := s.Outbox(ctx, bob)
	if err != nil || len(box) != 1 || box[0].ID() != id || box[0].State() != domain.MessageSent {
		t.Fatalf("outbox after migration: %v, %v", box, err)
	}
	found, err := s.Search(ctx, "unicorn", 10)
	if err != nil || len(found) != 1 || found[0].ID() != id {
		t.Fatalf("search after migration: %v, %v", found, err)
	}
	if got, err := s.SetState(ctx, id, domain.MessageStored); err != nil || got.State() != domain.MessageStored {
		t.Fatalf("stored after migration: %v, %v", got.State(), err)
	}
}
