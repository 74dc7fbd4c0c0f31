package storage_test

import (
	"errors"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/domain"
)

// FuzzSearch feeds arbitrary queries to Search: whatever the user types, the
// statement must run (no FTS5 syntax error reaches the user) and return at
// most the messages that exist.
func FuzzSearch(f *testing.F) {
	for _, q := range []string{`hello`, `"`, `*`, `NEAR(a b, 2)`, `a OR b NOT c`, `col:x`, `^x`, `(`, `'`, "\x00",
		`"a" AND "b"`, `-x`, `+x`, `{a b}:c`, `héllo wörld`, `привет`, `🎉`, `a*b`, `""""`} {
		f.Add(q)
	}
	s, cleanup, err := storage.Open(storage.ProfileDir(f.TempDir()), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(cleanup)
	ctx := ctxFor(f)
	for i, b := range []string{`she said "hello" twice`, `NEAR the end AND OR NOT`, `col:value a*b ^start`, `héllo привет 🎉`} {
		if err := s.SaveOutgoing(ctx, out(f, bob, b, t0.Add(time.Duration(i)*time.Second))); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, q string) {
		got, err := s.Search(ctx, q, 10)
		if errors.Is(err, domain.ErrTooLarge) && len(q) > storage.MaxSearchQuery {
			return
		}
		if err != nil {
			t.Fatalf("Search(%q): %v", q, err)
		}
		if len(got) > 4 {
			t.Fatalf("Search(%q) returned %d messages, only 4 exist", q, len(got))
		}
	})
}
