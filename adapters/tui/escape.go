package tui

import (
	"strings"
	"unicode"

	"github.com/rivo/uniseg"

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
//
// Emoji sequences stay whole: inside one grapheme cluster (UAX #29, as
// tview itself segments) that starts with a pictograph, a zero-width joiner
// (👨‍👩‍👧, 🧑‍💻, 🏳️‍🌈) is kept, and so are the tag characters of a subdivision
// flag (🏴 + tags + cancel tag). Everywhere else they are made visible like
// any format character: a lone joiner or tag run could hide text.
func Escape(s string) string {
	return openBracket.Replace(displayText(s))
}

// displayText is domain.DisplayText that keeps emoji sequences whole.
//
// An emoji that ends with a skin-tone modifier (👍🏽) gets a variation
// selector 16 (U+FE0F, "emoji presentation", invisible and part of the
// same cluster) after the modifier: uniseg v0.4.7's line breaking reports a
// mandatory break after such a cluster, so tview wrapped the rest of the
// line away and the cell after the emoji came out blank. With the selector
// the cluster ends in an extender and the break is only allowed.
func displayText(s string) string {
	if !strings.ContainsRune(s, zwj) && !hasTag(s) && !hasModifier(s) {
		return domain.DisplayText(s) // the common case: nothing to keep
	}
	var b strings.Builder
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		cluster := g.Str()
		runes := g.Runes()
		if len(runes) < 2 || !unicode.Is(unicode.So, runes[0]) {
			b.WriteString(domain.DisplayText(cluster))
			continue
		}
		flag := runes[0] == blackFlag
		for _, r := range runes {
			if r == zwj || (flag && r >= tagFirst && r <= tagLast) {
				b.WriteRune(r)
				continue
			}
			b.WriteString(domain.DisplayText(string(r)))
		}
		if last := runes[len(runes)-1]; last >= modifierFirst && last <= modifierLast {
			b.WriteRune(vs16)
		}
	}
	return b.String()
}

func hasModifier(s string) bool {
	for _, r := range s {
		if r >= modifierFirst && r <= modifierLast {
			return true
		}
	}
	return false
}

const (
	zwj       = '\u200d'
	blackFlag = '\U0001F3F4'
	tagFirst  = '\U000E0020'
	tagLast   = '\U000E007F'
	// The emoji modifiers (Fitzpatrick skin tones 1-2 to 6).
	modifierFirst = '\U0001F3FB'
	modifierLast  = '\U0001F3FF'
	vs16          = '\ufe0f'
)

func hasTag(s string) bool {
	for _, r := range s {
		if r >= tagFirst && r <= tagLast {
			return true
		}
	}
	return false
}

var openBracket = strings.NewReplacer("[", "[[::]")

// lineBreaks turns what Escape keeps for multi-line text into visible symbols,
// for widgets that hold one line (lists, titles, the status bar).
var lineBreaks = strings.NewReplacer("\n", "⏎", "\r", "⏎", "\t", " ")

// escapeLine is Escape for one-line widgets.
func escapeLine(s string) string {
	return lineBreaks.Replace(Escape(s))
}
