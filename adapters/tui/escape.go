package tui

import (
	"strings"

	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
)

// Escape is the one function every string from outside the program (a peer's
// name, a message, a file name, an error text) passes through before it reaches
// a widget: domain.DisplayText makes control, terminal-escape and bidi
// characters visible (`\x1b`, `\u202e`), then tview.Escape stops `[red]` or
// `["region"]` from being read as a tag. Line breaks and tabs are kept.
func Escape(s string) string {
	return tview.Escape(domain.DisplayText(s))
}

// lineBreaks turns what Escape keeps for multi-line text into visible symbols,
// for widgets that hold one line (lists, titles, the status bar).
var lineBreaks = strings.NewReplacer("\n", "⏎", "\r", "⏎", "\t", " ")

// escapeLine is Escape for one-line widgets.
func escapeLine(s string) string {
	return lineBreaks.Replace(Escape(s))
}
