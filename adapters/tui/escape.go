package tui

import (
	"strings"

	"github.com/chatx/chatx/domain"
)

// Escape is the one function every string from outside the program (a peer's
// name, a message, a file name, an error text) passes through before it reaches
// a widget: domain.DisplayText makes control, terminal-escape and bidi
// characters visible (`\x1b`, `\u202e`), then every "[" is followed by the
// empty style tag "[::]", so no "[" from outside can open a tag: tview draws
// the "[" as it is and obeys the empty tag by changing nothing. Line breaks
// and tabs are kept.
//
// Why not tview.Escape: it inserts "[" before the "]" of runs made of
// [a-zA-Z0-9_,;: \-."#], a narrower set than its renderer reads. FuzzEscape
// found "[a!b[]" drawn as "[a!b]" (the renderer's escaped-tag pattern is
// `^\[[^\[\]]+\[+\]`) and "[:::]" drawn as nothing (a URL tag, where "[" is
// a valid character, so no escaping of that form can work).
func Escape(s string) string {
	return openBracket.Replace(domain.DisplayText(s))
}

var openBracket = strings.NewReplacer("[", "[[::]")

// lineBreaks turns what Escape keeps for multi-line text into visible symbols,
// for widgets that hold one line (lists, titles, the status bar).
var lineBreaks = strings.NewReplacer("\n", "⏎", "\r", "⏎", "\t", " ")

// escapeLine is Escape for one-line widgets.
func escapeLine(s string) string {
	return lineBreaks.Replace(Escape(s))
}
