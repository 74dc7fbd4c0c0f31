package domain_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/chatx/chatx/domain"
)

func TestSafeFileName(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"../../x", "x"},
		{"/etc/passwd", "passwd"},
		{`..\x`, "x"},
		{`C:\x`, "x"},
		{"C:x", "x"},
		{"NUL", "_NUL"},
		{"nul.txt", "_nul.txt"},
		{"COM1 ", "_COM1"},
		{"lpt9.tar.gz", "_lpt9.tar.gz"},
		{"a\x1b[31mred", "a_[31mred"},
		{"line\r\nbreak", "line__break"},
		{"evil\u202etxt.exe", "evil_txt.exe"},
		{"[red]tag[-]", "[red]tag[-]"},
		{"..", "file"},
		{".", "file"},
		{"", "file"},
		{"dir/", "file"},
		{"  spaced  ", "spaced"},
		{"trailing...", "trailing"},
		{"bad\xffutf8", "bad_utf8"},
		{"what?.txt", "what_.txt"},
		{"zero\u200bwidth", "zero_width"},
		{".hidden", ".hidden"},
		{"naïve café.txt", "naïve café.txt"},
	}
	for _, tt := range tests {
		if got := domain.SafeFileName(tt.in); got != tt.want {
			t.Errorf("SafeFileName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSafeFileNameBoundsLength(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 10000) + ".tar.gz"
	got := domain.SafeFileName(long)
	if len(got) > domain.MaxFileNameBytes || !utf8.ValidString(got) || !strings.HasSuffix(got, ".gz") {
		t.Fatalf("len %d, valid %v, got suffix %q", len(got), utf8.ValidString(got), got[len(got)-5:])
	}
}

func TestSafeRelativePath(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a", "a/b/c.txt", "photos/2026/img 1.jpg"} {
		if _, err := domain.SafeRelativePath(ok); err != nil {
			t.Errorf("SafeRelativePath(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/a", "a/../b", "..", "a/./b", "a//b", `a\b`, "C:/x", "a/NUL", "a/b\x1b", strings.Repeat("a/", 65) + "a", strings.Repeat("x", 5000)} {
		if _, err := domain.SafeRelativePath(bad); err == nil {
			t.Errorf("SafeRelativePath(%q) accepted", bad)
		}
	}
}

func TestDisplayText(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain [red]tags stay for the UI to escape", "plain [red]tags stay for the UI to escape"},
		{"esc\x1b[31m", `esc\x1b[31m`},
		{"bidi\u202eevil", `bidi\u202eevil`},
		{"multi\nline\tok", "multi\nline\tok"},
		{"bell\a", `bell\x07`},
		{"c1\u0085", `c1\x85`},
		{"bad\xff", "bad\uFFFD"},
	}
	for _, tt := range tests {
		if got := domain.DisplayText(tt.in); got != tt.want {
			t.Errorf("DisplayText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzSafeFileName checks the invariants of SafeFileName on any input: the
// result is a non-empty, bounded, valid UTF-8 base name with no separators,
// no control, format or bidi characters, not "." or "..", not a reserved
// device name, without trailing dots or spaces, and a fixed point.
func FuzzSafeFileName(f *testing.F) {
	for _, s := range []string{"../../x", "/etc/passwd", `..\x`, `C:\x`, "NUL", "COM1 ", "a\x1b[31m", "\r", "\u202e", "[red]", strings.Repeat("a", 300), "con.txt", ". .", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := domain.SafeFileName(in)
		if out == "" || out == "." || out == ".." {
			t.Fatalf("SafeFileName(%q) = %q", in, out)
		}
		if len(out) > domain.MaxFileNameBytes {
			t.Fatalf("SafeFileName(%q) has %d bytes", in, len(out))
		}
		if !utf8.ValidString(out) {
			t.Fatalf("SafeFileName(%q) = %q is not UTF-8", in, out)
		}
		if strings.ContainsAny(out, `/\`) || strings.HasSuffix(out, ".") || strings.HasSuffix(out, " ") || strings.HasPrefix(out, " ") {
			t.Fatalf("SafeFileName(%q) = %q", in, out)
		}
		for _, r := range out {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("SafeFileName(%q) = %q keeps %U", in, out, r)
			}
		}
		base := strings.ToLower(out)
		if i := strings.IndexByte(base, '.'); i >= 0 {
			base = base[:i]
		}
		switch base {
		case "con", "prn", "aux", "nul", "com1", "lpt1":
			t.Fatalf("SafeFileName(%q) = %q is a reserved name", in, out)
		}
		if again := domain.SafeFileName(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
		if _, err := domain.SafeRelativePath(out); err != nil {
			t.Fatalf("SafeFileName(%q) = %q is not a safe relative path: %v", in, out, err)
		}
	})
}
