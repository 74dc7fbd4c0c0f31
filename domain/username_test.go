package domain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/chatx/chatx/domain"
)

func TestParseUsernameNormalises(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw, want string
	}{
		{"alice", "alice"},
		{"ALICE", "alice"},
		{"  Alice  ", "alice"},
		{"ａｌｉｃｅ", "alice"},      // full-width, NFKC
		{"\u0430lice", "alice"}, // Cyrillic а
		{"bob_99", "bob_99"},
		{"x.y-z", "x.y-z"},
		{"STRASSE", "strasse"},
		{"straße", "strasse"}, // case folding of ß
	}
	for _, tt := range tests {
		u, err := domain.ParseUsername(tt.raw)
		if err != nil {
			t.Errorf("ParseUsername(%q): %v", tt.raw, err)
			continue
		}
		if u.String() != tt.want {
			t.Errorf("ParseUsername(%q) = %q, want %q", tt.raw, u.String(), tt.want)
		}
	}
}

func TestLookAlikesCollide(t *testing.T) {
	t.Parallel()
	groups := [][]string{
		{"alice", "ALICE", "\u0430lice", "a1ice", "aIice", "ａｌｉｃｅ", "\u0430l\u0456c\u0435"},
		{"bob0", "bobo", "BOBO", "b\u043eb\u043e"},
		{"paypal", "p\u0430yp\u0430l", "pаураl"},
		{"greek", "gr\u03b5\u03b5k"},
	}
	for _, g := range groups {
		first := domain.MustUsername(g[0])
		for _, raw := range g[1:] {
			u, err := domain.ParseUsername(raw)
			if err != nil {
				t.Fatalf("ParseUsername(%q): %v", raw, err)
			}
			if !u.Equal(first) || u.Key() != first.Key() {
				t.Errorf("%q (key %q) should collide with %q (key %q)", raw, u.Key(), g[0], first.Key())
			}
		}
	}
	if domain.MustUsername("alice").Equal(domain.MustUsername("alise")) {
		t.Error("alice and alise are different names")
	}
}

func TestParseUsernameRejects(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"", "ab", strings.Repeat("a", 33), "has space", "semi;colon", "emoji😀x",
		"_lead", ".dot", "-dash", "tab\tx", "nul\x00x", "[red]x", "\u202eabc", "ok\u200bzero",
		strings.Repeat("ж", 1000),
	} {
		if _, err := domain.ParseUsername(raw); !errors.Is(err, domain.ErrInvalidUsername) {
			t.Errorf("ParseUsername(%q) err = %v, want ErrInvalidUsername", raw, err)
		}
	}
	if _, err := domain.ParseUsername(strings.Repeat("a", 32)); err != nil {
		t.Errorf("32 characters should be allowed: %v", err)
	}
}

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"alice", "ALICE", "\u0430lice", "a1ice", "x", "ｆｕｌｌ", "straße"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := domain.ParseUsername(raw)
		if err != nil {
			return
		}
		// Normalising is idempotent and the result stays in the documented set.
		again, err := domain.ParseUsername(u.String())
		if err != nil || again.String() != u.String() || again.Key() != u.Key() {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", raw, u, again, err)
		}
		n := len(u.String())
		if n < domain.MinUsernameLen || n > domain.MaxUsernameLen {
			t.Fatalf("length %d out of bounds: %q", n, u)
		}
		for _, r := range u.String() {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
				t.Fatalf("rune %q outside the allowed set in %q", r, u)
			}
		}
	})
}
