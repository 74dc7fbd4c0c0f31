package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
)

var (
	alice = domain.MustUsername("alice")
	bob   = domain.MustUsername("bob")
	now   = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
)

func TestNewOutgoingMessageValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want error
	}{
		{"ok", "hello", nil},
		{"exactly 64 KiB", strings.Repeat("x", domain.MaxMessageBytes), nil},
		{"empty", "", domain.ErrEmptyMessage},
		{"too long", strings.Repeat("x", domain.MaxMessageBytes+1), domain.ErrMessageTooLong},
		{"bad utf-8", "a\xffb", domain.ErrInvalidUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := domain.NewOutgoingMessage(alice, bob, tt.body, now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && (m.State() != domain.MessageQueued || m.Peer() != bob || m.Direction() != domain.Outgoing) {
				t.Fatalf("new message: state %v peer %v dir %v", m.State(), m.Peer(), m.Direction())
			}
		})
	}
}

func TestMessageIDsAreRandomAndParse(t *testing.T) {
	t.Parallel()
	seen := map[domain.MessageID]bool{}
	for i := 0; i < 1000; i++ {
		id := domain.NewMessageID()
		if seen[id] {
			t.Fatal("duplicate message id")
		}
		seen[id] = true
		back, err := domain.ParseMessageID(id.String())
		if err != nil || back != id {
			t.Fatalf("round trip %s: %v %v", id, back, err)
		}
	}
	if _, err := domain.ParseMessageID("zz"); err == nil {
		t.Fatal("bad id parsed")
	}
}

func TestMessageStateRules(t *testing.T) {
	t.Parallel()
	m, _ := domain.NewOutgoingMessage(alice, bob, "hi", now)
	steps := []struct {
		do   func(*domain.Message) error
		want domain.MessageState
		ok   bool
	}{
		{(*domain.Message).MarkSent, domain.MessageSent, true},
		{(*domain.Message).MarkSent, domain.MessageSent, true}, // idempotent
		{(*domain.Message).MarkDelivered, domain.MessageDelivered, true},
		{(*domain.Message).MarkSent, domain.MessageDelivered, true}, // a late local record does not go back
		{(*domain.Message).MarkFailed, domain.MessageDelivered, false},
		{(*domain.Message).MarkRead, domain.MessageRead, true},
		{(*domain.Message).MarkDelivered, domain.MessageRead, true},
	}
	for i, s := range steps {
		err := s.do(&m)
		if (err == nil) != s.ok {
			t.Fatalf("step %d: err = %v, ok want %v", i, err, s.ok)
		}
		if err != nil && !errors.Is(err, domain.ErrInvalidTransition) {
			t.Fatalf("step %d: err %v is not ErrInvalidTransition", i, err)
		}
		if m.State() != s.want {
			t.Fatalf("step %d: state %v, want %v", i, m.State(), s.want)
		}
	}
	// An acknowledgement may overtake the local "sent" record.
	q, _ := domain.NewOutgoingMessage(alice, bob, "hi", now)
	if err := q.MarkDelivered(); err != nil {
		t.Fatal(err)
	}
	// A failed message may be queued again, not delivered directly.
	f, _ := domain.NewOutgoingMessage(alice, bob, "hi", now)
	_ = f.MarkFailed()
	if err := f.MarkDelivered(); err == nil {
		t.Fatal("failed → delivered allowed")
	}
	if err := f.MoveTo(domain.MessageQueued); err != nil {
		t.Fatal(err)
	}
}

func TestMessageStateNamesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []domain.MessageState{domain.MessageQueued, domain.MessageSent, domain.MessageDelivered, domain.MessageRead, domain.MessageFailed} {
		back, err := domain.ParseMessageState(s.String())
		if err != nil || back != s {
			t.Fatalf("%v: %v %v", s, back, err)
		}
	}
}

func TestIncomingMessage(t *testing.T) {
	t.Parallel()
	id := domain.NewMessageID()
	m, err := domain.NewIncomingMessage(id, bob, alice, now, "yo")
	if err != nil {
		t.Fatal(err)
	}
	if m.Peer() != bob || m.State() != domain.MessageDelivered || m.Direction() != domain.Incoming || m.ID() != id {
		t.Fatalf("incoming message: %+v", m)
	}
	if _, err := domain.NewIncomingMessage(id, bob, alice, now, strings.Repeat("x", domain.MaxMessageBytes+1)); !errors.Is(err, domain.ErrMessageTooLong) {
		t.Fatalf("err = %v", err)
	}
}

func TestStoredState(t *testing.T) {
	m, err := domain.NewOutgoingMessage(domain.MustUsername("alice"), domain.MustUsername("bob"), "hi", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.MarkStored(); err != nil || m.State() != domain.MessageStored || !m.IsPending() {
		t.Fatalf("queued → stored: %v, %v, pending %v", err, m.State(), m.IsPending())
	}
	if err := m.MarkSent(); err != nil || m.State() != domain.MessageStored {
		t.Fatalf("a direct write after storing: %v, %v; want it to stay stored", err, m.State())
	}
	if err := m.MoveTo(domain.MessageQueued); !errors.Is(err, domain.ErrInvalidTransition) {
		t.Fatalf("stored → queued: %v", err)
	}
	if err := m.MarkDelivered(); err != nil || m.State() != domain.MessageDelivered || m.IsPending() {
		t.Fatalf("stored → delivered: %v, %v", err, m.State())
	}
	if err := m.MarkStored(); err != nil || m.State() != domain.MessageDelivered {
		t.Fatalf("a late stored after delivered: %v, %v", err, m.State())
	}
	if s, err := domain.ParseMessageState("stored"); err != nil || s != domain.MessageStored || s.String() != "stored" {
		t.Fatalf("stored's name: %v %v", s, err)
	}
}
