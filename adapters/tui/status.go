package tui

import (
	"strings"

	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
)

// statusBar shows the registry's state, who we are and where we listen.
type statusBar struct {
	view      *tview.TextView
	known     bool // a DirectoryStatusEvent has arrived
	connected bool
	err       string
	requests  int           // strangers with message requests waiting
	own       domain.Status // our status as last set
}

func (s *statusBar) setRequests(u *UI, n int) {
	s.requests = n
	s.render(u)
}

func (s *statusBar) setOwnStatus(u *UI, st domain.Status) {
	s.own = st
	s.render(u)
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
	b.WriteString(" │ " + s.own.Availability.String())
	if s.own.Text != "" {
		b.WriteString(": " + escapeLine(s.own.Text))
	}
	if s.requests > 0 {
		b.WriteString(" │ [yellow::b]" + plural(s.requests, "request") + " (F3)[-::-]")
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
