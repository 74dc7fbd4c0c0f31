package tui

import (
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
	o.view.SetText(offerText(o.current))
	u.showOverlay(pageOffer, centered(o.view, 64, 12), o.view)
}

func offerText(tr domain.Transfer) string {
	var b strings.Builder
	m := tr.Manifest()
	fmt.Fprintf(&b, "[::b]%s[::-] offers you:\n\n", escapeLine(tr.Peer().String()))
	fmt.Fprintf(&b, "  [::b]%s[::-]\n", escapeLine(m.Name))
	if m.IsFolder() {
		fmt.Fprintf(&b, "  a folder of %d files, %s\n", len(m.Files), humanBytes(tr.Total()))
	} else {
		fmt.Fprintf(&b, "  %s\n", humanBytes(tr.Total()))
	}
	b.WriteString("\n[green::b]a[-::-] accept    [red::b]d[-::-] decline    [::b]Esc[::-] decide later")
	return b.String()
}

func (u *UI) answerOffer(accept bool) {
	tr := u.offer.current
	u.closeOverlay()
	u.answer(tr, accept)
}

func (u *UI) closeOffer() { u.closeOverlay() }
