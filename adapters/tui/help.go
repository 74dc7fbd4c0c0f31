package tui

import (
	"fmt"
	"strings"

	"github.com/rivo/tview"
)

// helpScreen lists every key binding and every command, generated from the
// tables that drive them.
type helpScreen struct {
	view *tview.TextView
}

func newHelpScreen(u *UI) *helpScreen {
	h := &helpScreen{view: tview.NewTextView().SetDynamicColors(true).SetScrollable(true).SetWrap(true)}
	h.view.SetBorder(true).SetTitle(" Help — Esc closes ")
	h.view.SetText(HelpText(u.bindings, u.commands))
	return h
}

// HelpText renders the bindings, grouped by scope, and the commands.
func HelpText(bindings []Binding, commands []Command) string {
	var b strings.Builder
	b.WriteString("[::b]ChatX[::-] — peers on the left, the conversation on the right, transfers below it; type at the bottom.\n")
	for _, s := range scopeOrder {
		first := true
		for _, kb := range bindings {
			if kb.Scope != s {
				continue
			}
			if first {
				fmt.Fprintf(&b, "\n[teal::b]%s[-::-]\n", s)
				first = false
			}
			fmt.Fprintf(&b, "  [::b]%-10s[::-] %s\n", Escape(kb.Name), Escape(kb.Description))
		}
	}
	b.WriteString("\n[teal::b]commands[-::-] (type in the input line; Tab completes)\n")
	for _, c := range commands {
		name := "/" + c.Name
		if c.Args != "" {
			name += " " + c.Args
		}
		fmt.Fprintf(&b, "  [::b]%-16s[::-] %s\n", Escape(name), Escape(c.Description))
	}
	b.WriteString("\nA line starting with // sends the text after the first slash. The mouse selects peers and transfers and scrolls.\n")
	b.WriteString("Marks: [green]●[-] online  ○ offline  [green]✔[-] verified  [red]⚠[-] key changed  (3) unread  " +
		"… queued  ✓ sent  [green]✓✓[-] delivered  [blue]✓✓[-] read  [red]✗[-] failed")
	return b.String()
}

func (u *UI) showHelp() {
	if u.overlay == pageHelp {
		u.closeOverlay()
		return
	}
	u.help.view.ScrollToBeginning()
	u.showOverlay(pageHelp, u.help.view, u.help.view)
}
