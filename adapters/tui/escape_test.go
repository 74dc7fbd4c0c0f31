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

// TestEmojiSequencesStayWhole: ZWJ sequences, skin tones and subdivision
// flags are drawn as one cell run each (the screen shows them as sent);
// joiners and tags outside an emoji are still made visible.
func TestEmojiSequencesStayWhole(t *testing.T) {
	for _, e := range []string{
		"👨\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈", "🧑\u200d💻", "👍🏽", "🏴\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F",
	} {
		in := "a" + e + "b"
		// A skin-toned emoji gets an invisible emoji presentation selector
		// (see displayText): without it the text after it was wrapped away.
		shown := e
		if strings.ContainsRune(e, '🏽') {
			shown += "\ufe0f"
		}
		if got := drawn(t, tui.Escape(in)); got != "a"+shown+"b" {
			t.Errorf("Escape(%q) shows %q, want it whole", in, got)
		}
		// One cell run: the whole sequence in the cell after "a", "b" right after its width.
		screen := tcell.NewSimulationScreen("UTF-8")
		if err := screen.Init(); err != nil {
			t.Fatal(err)
		}
		screen.SetSize(20, 1)
		v := tview.NewTextView().SetDynamicColors(true).SetWrap(true).SetText(tui.Escape(in))
		v.SetRect(0, 0, 20, 1)
		v.Draw(screen)
		primary, combining, _, width := screen.GetContent(1, 0)
		if got := string(primary) + string(combining); got != shown || width != 2 {
			t.Errorf("%q: cell 1 holds %q of width %d, want the whole sequence in 2 cells", e, got, width)
		}
		if b, _, _, _ := screen.GetContent(3, 0); b != 'b' {
			t.Errorf("%q: the text after it is not in the next cell (%q): a line break or a split", e, b)
		}
		screen.Fini()
	}
	for in, shown := range map[string]string{
		"zero\u200dwidth":        `zero\u200dwidth`,
		"a\U000E0041\U000E0042b": `a\ue0041\ue0042b`,
		"👨\u202e👩":               `👨\u202e👩`,
	} {
		if got := drawn(t, tui.Escape(in)); got != shown {
			t.Errorf("Escape(%q) shows %q, want %q", in, got, shown)
		}
	}
}
