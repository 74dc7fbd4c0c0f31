package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
)

// maxPendingOffers bounds the offers waiting for their dialog; the rest stay
// answerable in the transfers pane.
const maxPendingOffers = 32

// maxAskedOffers bounds the memory of offers that already had their dialog.
const maxAskedOffers = 4096

// offerDialog asks about one incoming offer at a time: sender, name, size;
// a accepts, d declines.
type offerDialog struct {
	view    *tview.TextView
	current domain.Transfer
	pending []domain.Transfer
	asked   map[domain.TransferID]bool // offers that already had their dialog
}

func newOfferDialog() *offerDialog {
	return &offerDialog{view: dialogView(" Incoming file "), asked: make(map[domain.TransferID]bool)}
}

func (o *offerDialog) queue(tr domain.Transfer) {
	if o.asked[tr.ID()] || len(o.pending) >= maxPendingOffers {
		return
	}
	for i := range o.pending {
		if o.pending[i].ID() == tr.ID() {
			o.pending[i] = tr
			return
		}
	}
	o.pending = append(o.pending, tr)
}

func (o *offerDialog) drop(id domain.TransferID) {
	o.pending = slices.DeleteFunc(o.pending, func(t domain.Transfer) bool { return t.ID() == id })
}

func (o *offerDialog) hasPending() bool { return len(o.pending) > 0 }

func (u *UI) showOffer() {
	o := u.offer
	if len(o.pending) == 0 {
		return
	}
	o.current = o.pending[0]
	o.pending = o.pending[1:]
	if len(o.asked) >= maxAskedOffers {
		clear(o.asked) // forgetting only means an old offer could be asked about again
	}
	o.asked[o.current.ID()] = true
	o.view.SetText(offerText(o.current, ""))
	u.showOverlay(pageOffer, centered(o.view, 64, 12), o.view)
}

// offerText is the dialog's text; status, if any, says what happened to it
// (already escaped).
func offerText(tr domain.Transfer, status string) string {
	var b strings.Builder
	m := tr.Manifest()
	fmt.Fprintf(&b, "[::b]%s[::-] offers you:\n\n", escapeLine(tr.Peer().String()))
	fmt.Fprintf(&b, "  [::b]%s[::-]\n", escapeLine(m.Name))
	if m.IsFolder() {
		fmt.Fprintf(&b, "  a folder of %s, %s\n", plural(len(m.Files), "file"), humanBytes(tr.Total()))
	} else {
		fmt.Fprintf(&b, "  %s\n", humanBytes(tr.Total()))
	}
	if status != "" {
		b.WriteString("\n" + status + "\n")
	}
	if tr.State() == domain.TransferOffered {
		b.WriteString("\n[green::b]a[-::-] accept    [red::b]d[-::-] decline    [::b]Esc[::-] decide later")
	} else {
		b.WriteString("\n[::b]Esc[::-] close")
	}
	return b.String()
}

// answerOffer answers the offer in the dialog. An accept keeps the dialog
// until the client answers: a refusal (over the size limit, no space) is
// shown there, and keys typed meanwhile stay in the dialog instead of
// landing in the input line.
func (u *UI) answerOffer(accept bool) {
	tr := u.offer.current
	if !accept || tr.State() != domain.TransferOffered {
		u.closeOverlay()
		if tr.State() == domain.TransferOffered {
			u.answer(tr, accept)
		}
		return
	}
	id, name := tr.ID(), tr.Manifest().Name
	u.offer.drop(id)
	u.offer.view.SetText(offerText(tr, "[::d]accepting…[::-]"))
	u.spawn("accept "+name, func(ctx context.Context) (func(), error) {
		err := u.client.AcceptTransfer(ctx, id)
		return func() {
			showing := u.overlay == pageOffer && u.offer.current.ID() == id
			switch {
			case err == nil:
				if showing {
					u.closeOverlay()
				}
				u.showNotice("accepted " + escapeLine(name))
			case showing:
				u.offer.view.SetText(offerText(u.offer.current, "[red]✗[-] "+escapeLine(err.Error())))
			default:
				u.showError("accept "+name, err)
			}
		}, nil
	})
}

// offerOutcome shows, in the dialog still on screen, how an offer ended
// (declined because it is too large, cancelled by the sender).
func (u *UI) offerOutcome(tr domain.Transfer) {
	u.offer.current = tr
	what := stateWord(tr.State())
	if r := tr.Reason(); r != "" {
		what = r
	}
	u.offer.view.SetText(offerText(tr, "[red]✗[-] "+escapeLine(what)))
}

func (u *UI) closeOffer() { u.closeOverlay() }
