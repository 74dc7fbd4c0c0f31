package tui

import (
	"context"
	"fmt"
	"strings"

	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// safetyScreen shows what two people compare to verify each other: the safety
// number and both fingerprints.
type safetyScreen struct {
	view *tview.TextView
	sv   ports.SafetyView
}

func newSafetyScreen() *safetyScreen {
	return &safetyScreen{view: dialogView(" Verify contact ")}
}

func (u *UI) showSafetyCurrent() {
	if u.current().IsZero() {
		u.showNotice("[red]✗[-] pick a peer first, then verify it")
		return
	}
	u.showSafety(u.current())
}

// showSafety fetches the safety view of name and shows it.
func (u *UI) showSafety(name domain.Username) {
	u.spawn("safety number of "+name.String(), func(ctx context.Context) (func(), error) {
		sv, err := u.client.Safety(ctx, name)
		if err != nil {
			return nil, err
		}
		return func() {
			if u.overlay != "" && u.overlay != pageSafety {
				return // a warning or another screen took the front meanwhile
			}
			u.safety.sv = sv
			u.safety.view.SetText(safetyText(sv))
			u.showOverlay(pageSafety, centered(u.safety.view, 76, 19), u.safety.view)
		}, nil
	})
}

func safetyText(sv ports.SafetyView) string {
	var b strings.Builder
	name := escapeLine(sv.Name.String())
	fmt.Fprintf(&b, "Compare this number with [::b]%s[::-], in person or by phone. It is the same on both sides.\n\n", name)
	groups := strings.Fields(sv.SafetyNumber)
	for i, g := range groups {
		if i%4 == 0 {
			b.WriteString("   ")
		}
		b.WriteString("[::b]" + escapeLine(g) + "[::-] ")
		if i%4 == 3 {
			b.WriteString("\n")
		}
	}
	if len(groups)%4 != 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nYour fingerprint:  %s\n", sv.Ours.String()[:39])
	fmt.Fprintf(&b, "Their fingerprint: %s\n\n", sv.Theirs.String()[:39])
	if sv.Verified {
		b.WriteString("Status: [green::b]✔ verified[-::-]\n")
	} else {
		b.WriteString("Status: not verified\n")
	}
	if sv.PendingKey != nil {
		fmt.Fprintf(&b, "[red::b]⚠ %s presented another key: %s[-::-]\n", name, sv.PendingKey.String()[:39])
		b.WriteString("\n[::b]v[::-] verified  [::b]u[::-] not verified  [red::b]a[-::-] accept the new key  [::b]Esc[::-] close")
	} else {
		b.WriteString("\n[::b]v[::-] mark verified   [::b]u[::-] mark not verified   [::b]Esc[::-] close")
	}
	return b.String()
}

func (u *UI) setVerified(verified bool) {
	name := u.safety.sv.Name
	if name.IsZero() {
		return
	}
	u.spawn("verify "+name.String(), func(ctx context.Context) (func(), error) {
		if err := u.client.SetVerified(ctx, name, verified); err != nil {
			return nil, err
		}
		return func() {
			u.peers.markVerified(u, name, verified)
			u.conv.renderTitle(u)
			if u.overlay == pageSafety && u.safety.sv.Name.Equal(name) {
				u.safety.sv.Verified = verified
				u.safety.view.SetText(safetyText(u.safety.sv))
			}
			if verified {
				u.showNotice("[green]✔[-] " + escapeLine(name.String()) + " is verified")
			} else {
				u.showNotice(escapeLine(name.String()) + " is no longer marked verified")
			}
		}, nil
	})
}

func (u *UI) safetyAcceptKey() {
	sv := u.safety.sv
	if sv.PendingKey == nil {
		return
	}
	u.keyChange.dropKeyChange(sv.Name)
	u.closeOverlay()
	u.acceptKey(sv.Name)
}
