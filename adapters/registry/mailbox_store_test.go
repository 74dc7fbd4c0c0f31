package registry_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

func TestFileMailboxStoreContract(t *testing.T) {
	contract.MailboxStore(t, func(t *testing.T) ports.MailboxStore {
		s, cleanup, err := registry.NewFileMailboxStore(registry.DataDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cleanup)
		return s
	})
}

func TestFilePrekeyStoreContract(t *testing.T) {
	contract.PrekeyStore(t, func(t *testing.T) ports.PrekeyStore {
		s, cleanup, err := registry.NewFilePrekeyStore(registry.DataDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cleanup)
		return s
	})
}

// TestFileMailboxStoreSurvivesReopen: what was put and not deleted is there
// after a reopen (a registry restart), deletions stay deleted, a torn last
// line is cut off, and the log compacts once most of it is garbage.
func TestFileMailboxStoreSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := registry.DataDir(t.TempDir())
	now := time.Now()
	q := ports.MailQuota{Count: 10_000, Bytes: 1 << 30}
	bob := domain.MustUsername("bob")
	s, cleanup, err := registry.NewFileMailboxStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []ports.MailID
	for i := range 200 {
		m := ports.Mail{To: bob, Blob: bytes.Repeat([]byte{byte(i)}, 100), Deposited: now.Add(time.Duration(i) * time.Millisecond), Expires: now.Add(time.Hour)}
		m.ID[0], m.ID[1] = byte(i), byte(i>>8)
		ids = append(ids, m.ID)
		if err := s.Put(ctx, m, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, bob, ids[:190]); err != nil {
		t.Fatal(err)
	}
	cleanup()
	// A torn write at the end: half a line, no newline.
	path := filepath.Join(string(dir), "mailbox.jsonl")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"put","id":"00`)
	f.Close()

	s, cleanup, err = registry.NewFileMailboxStore(dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer cleanup()
	got, err := s.List(ctx, bob, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("after reopen %d mails, want the 10 not deleted", len(got))
	}
	for i, m := range got {
		if m.ID != ids[190+i] || !bytes.Equal(m.Blob, bytes.Repeat([]byte{byte(190 + i)}, 100)) {
			t.Fatalf("mail %d after reopen: %x", i, m.ID)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(b, []byte("\n")); lines != 10 {
		t.Fatalf("log has %d lines after the compaction at open, want 10", lines)
	}
}
