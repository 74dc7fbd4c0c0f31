package tui

import (
	"strings"

	"github.com/rivo/tview"
)

// statusBar shows the registry's state, who we are and where we listen.
type statusBar struct {
	view      *tview.TextView
	known     bool // a DirectoryStatusEvent has arrived
	connected bool
	err       string
}

func newStatusBar(u *UI) *statusBar {
	s := &statusBar{view: tview.NewTextView().SetDynamicColors(true).SetWrap(false)}
	s.render(u)
	return s
}

func (s *statusBar) setDirectory(u *UI, connected bool, err string) {
	s.known, s.connected, s.err = true, connected, err
	s.render(u)
}

func (s *statusBar) render(u *UI) {
	var b strings.Builder
	switch {
	case !s.known:
		b.WriteString("[::d]… registry: connecting[::-]")
	case s.connected:
		b.WriteString("[green]●[-] registry: connected")
	default:
		b.WriteString("[red]○[-] registry: unreachable")
		if s.err != "" {
			b.WriteString(" (" + escapeLine(s.err) + ")")
		}
	}
	b.WriteString(" │ ")
	if u.me.IsZero() {
		b.WriteString("no identity")
	} else {
		b.WriteString("[::b]" + escapeLine(u.me.Name().String()) + "[::-] " + u.me.Fingerprint().Short())
	}
	ep := u.client.Endpoints()
	if len(ep.Link) > 0 {
		b.WriteString(" │ link " + escapeLine(strings.Join(ep.Link, " ")))
	}
	if len(ep.File) > 0 {
		b.WriteString(" │ files " + escapeLine(strings.Join(ep.File, " ")))
	}
	s.view.SetText(b.String())
}
