package tui

import (
	"context"
	"fmt"
	"strings"

	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// showReach fetches what the transports know of reachability and shows it
// on the reachability screen: what `chatx doctor` prints, live.
func (u *UI) showReach() {
	u.spawn("reachability", func(ctx context.Context) (func(), error) {
		rep := u.client.Reachability(ctx)
		peers, err := u.client.Peers(ctx)
		if err != nil {
			return nil, err
		}
		return func() {
			if u.overlay != "" && u.overlay != pageReach {
				return // a warning or another screen took the front meanwhile
			}
			if u.reach == nil {
				u.reach = tview.NewTextView().SetDynamicColors(true).SetScrollable(true).SetWrap(true)
				u.reach.SetBorder(true).SetTitle(" Reachability — r refreshes, Esc closes ")
			}
			u.reach.SetText(reachText(rep, peers))
			u.showOverlay(pageReach, centered(u.reach, 100, 30), u.reach)
		}, nil
	})
}

// reachText renders the reachability screen. Everything from outside is
// escaped.
func reachText(rep ports.ReachabilityReport, peers []ports.PeerView) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[::b]NAT[::-]         %s\n", escapeLine(rep.NAT.Describe()))
	for i, c := range rep.Candidates {
		label := ""
		if i == 0 {
			label = "[::b]candidates[::-]"
		}
		fmt.Fprintf(&b, "%-11s %s\n", label, escapeLine(c))
	}
	b.WriteString("\n[::b]peers[::-]\n")
	shown := 0
	for _, pv := range peers {
		if !pv.Peer.Online {
			continue
		}
		shown++
		how := "[yellow]no link now[-]"
		if !pv.Path.IsZero() {
			how = escapeLine(pv.Path.String() + " " + pv.Path.Remote)
		}
		nat := ""
		if pv.Peer.Endpoints.NAT != domain.NATUnknown {
			nat = " [::d](their NAT: " + escapeLine(string(pv.Peer.Endpoints.NAT)) + ")[::-]"
		}
		fmt.Fprintf(&b, "  %s: %s%s\n", escapeLine(pv.Peer.Name().String()), how, nat)
	}
	if shown == 0 {
		b.WriteString("  [::d]nobody online[::-]\n")
	}
	b.WriteString("\n[::b]last connection attempts[::-]\n")
	if len(rep.Attempts) == 0 {
		b.WriteString("  [::d]none yet[::-]\n")
	}
	for _, a := range rep.Attempts {
		line := a.At.Local().Format("15:04:05") + " " + a.Peer.String()
		if !a.Path.IsZero() {
			line += " " + a.Path.String() + " " + a.Path.Remote
		}
		mark := "[green]✓[-]"
		if a.Err != nil {
			mark = "[red]✗[-]"
			line += ": " + a.Err.Error()
		}
		if a.Detail != "" {
			line += " — " + a.Detail
		}
		b.WriteString("  " + mark + " " + escapeLine(line) + "\n")
	}
	return b.String()
}
