package jsonrpc_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/jsonrpc"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// A message sent to us that expired unread in our mailbox is a
// "mailExpired" notification saying whose, when and why.
func TestMailExpiredNotification(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := start(t, f, jsonrpc.Options{})
	sent := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	id := domain.MessageID{0x9f, 0x1c}
	f.events <- ports.MailExpiredEvent{From: domain.MustUsername("alice"), ID: id, SentAt: sent, Reason: "expired unread"}
	var got map[string]any
	if err := json.Unmarshal(h.note("mailExpired").Params, &got); err != nil {
		t.Fatal(err)
	}
	if got["from"] != "alice" || got["id"] != id.String() || got["sentAt"] != "2026-11-20T09:30:00Z" ||
		got["state"] != "failed" || got["reason"] != "expired unread" {
		t.Fatalf("mailExpired notification %v", got)
	}
}
