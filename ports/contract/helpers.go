package contract

import (
	"context"
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
)

// base is the time the suites start their clocks at.
var base = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func local(t *testing.T, name string) domain.LocalIdentity {
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

func ident(t *testing.T, name string) domain.Identity { return local(t, name).Identity }

func outgoing(t *testing.T, from, to domain.Username, body string, sentAt time.Time) domain.Message {
	t.Helper()
	m, err := domain.NewOutgoingMessage(from, to, body, sentAt)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func incoming(t *testing.T, id domain.MessageID, from, to domain.Username, body string, sentAt time.Time) domain.Message {
	t.Helper()
	m, err := domain.NewIncomingMessage(id, from, to, sentAt, body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func bodies(ms []domain.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Body()
	}
	return out
}

func names(us []domain.Username) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.Key()
	}
	slices.Sort(out)
	return out
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  [%s]\n want [%s]", what, strings.Join(got, ", "), strings.Join(want, ", "))
	}
}

func sameMessage(t *testing.T, got, want domain.Message) {
	t.Helper()
	switch {
	case got.ID() != want.ID():
		t.Fatalf("ID %s, want %s", got.ID(), want.ID())
	case !got.From().Equal(want.From()) || !got.To().Equal(want.To()):
		t.Fatalf("from %s to %s, want from %s to %s", got.From(), got.To(), want.From(), want.To())
	case !got.SentAt().Equal(want.SentAt()):
		t.Fatalf("SentAt %v, want %v", got.SentAt(), want.SentAt())
	case got.Body() != want.Body():
		t.Fatalf("Body %q, want %q", got.Body(), want.Body())
	case got.Direction() != want.Direction():
		t.Fatalf("Direction %s, want %s", got.Direction(), want.Direction())
	case got.State() != want.State():
		t.Fatalf("State %s, want %s", got.State(), want.State())
	}
}
