package tui_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/chatx/chatx/adapters/tui"
	"github.com/chatx/chatx/domain"
)

// drawn draws markup in a one-line TextView (colour and region tags on, as
// the UI uses them) and returns what the screen shows.
func drawn(t testing.TB, markup string) string {
	t.Helper()
	screen := tcell.NewSimulationScreen("UTF-8")
	if err := screen.Init(); err != nil {
		t.Fatal(err)
	}
	defer screen.Fini()
	screen.SetSize(400, 1)
	v := tview.NewTextView().SetDynamicColors(true).SetRegions(true).SetWrap(false).SetText(markup)
	v.SetRect(0, 0, 400, 1)
	v.Draw(screen)
	return strings.TrimRight(strings.TrimSuffix(tui.ScreenText(screen), "\n"), " ")
}

// TestEscape is not parallel: tui.New sets tview.Styles, a global the drawing
// here reads.
func TestEscape(t *testing.T) {
	tests := []struct{ in, shown string }{
		{"plain text", "plain text"},
		{"[red]x[-]", "[red]x[-]"},
		{"[::b]bold[::-]", "[::b]bold[::-]"},
		{`["region"]r[""]`, `["region"]r[""]`},
		{"[#ff0000]hex[-]", "[#ff0000]hex[-]"},
		{"[red[]already", "[red[]already"},
		{"open[", "open["},
		{"\x1b[31mansi\x1b[0m", `\x1b[31mansi\x1b[0m`},
		{"bidi \u202eevil\u202c", `bidi \u202eevil\u202c`},
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"bell\a c1\u0085", `bell\x07 c1\x85`},
		{"naïve ünïcode", "naïve ünïcode"},
	}
	for _, tc := range tests {
		if got := drawn(t, tui.Escape(tc.in)); got != tc.shown {
			t.Errorf("Escape(%q) shows %q, want %q", tc.in, got, tc.shown)
		}
	}
	// Our own markup after escaped text stays ours, and the text stays text.
	if got := drawn(t, tui.Escape("tail[")+"[red]✓[-]"); got != "tail[✓" {
		t.Errorf("escaped text then a tag shows %q", got)
	}
}

// FuzzEscape: whatever the string, the screen shows exactly its DisplayText:
// no tag is obeyed, no control, escape or bidi character reaches the screen.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"[red]x[-]", `["a"]b[""]`, "\x1b]0;title\a", "\u202e", "[::bl]", "[", "a[b]c", "[[]]", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 100 {
			return
		}
		s = strings.NewReplacer("\n", " ", "\t", " ").Replace(s)
		want := domain.DisplayText(s)
		for _, r := range want {
			// Compare cell by cell only where one rune is one cell.
			if !unicode.IsPrint(r) || r >= 0x1100 || unicode.In(r, unicode.Mn, unicode.Me, unicode.Mc) {
				return
			}
		}
		if got := drawn(t, tui.Escape(s)); got != strings.TrimRight(want, " ") {
			t.Fatalf("Escape(%q) shows %q, want %q", s, got, want)
		}
	})
}
