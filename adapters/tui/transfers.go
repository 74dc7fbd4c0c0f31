package tui

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
)

const (
	maxTransfersShown = 200
	progressWidth     = 12
)

// transfersPane lists transfers, newest first, with a progress bar, rate and
// ETA; the selected one can be accepted, declined or cancelled.
type transfersPane struct {
	table *tview.Table
	list  []domain.Transfer
}

func newTransfersPane(u *UI) *transfersPane {
	t := &transfersPane{table: tview.NewTable()}
	t.table.SetSelectable(true, false).
		SetSelectedStyle(tcell.StyleDefault.Reverse(true)).
		SetBorder(true).SetTitle(" Transfers ").SetTitleAlign(tview.AlignLeft)
	t.render()
	return t
}

// updateTransfer records a transfer's new state; a new incoming offer gets
// its dialog.
func (u *UI) updateTransfer(tr domain.Transfer) {
	t := u.transfers
	found := false
	for i := range t.list {
		if t.list[i].ID() != tr.ID() {
			continue
		}
		found = true
		have := t.list[i]
		if tr.UpdatedAt().Before(have.UpdatedAt()) || (have.State().Terminal() && !tr.State().Terminal()) {
			return // older news (SendFile's result after the events)
		}
		if tr.Direction() == domain.Incoming && tr.State() == domain.TransferCompleted && have.State() != domain.TransferCompleted {
			u.showNotice("[green]✓[-] " + escapeLine(tr.Manifest().Name) + " saved to " + escapeLine(u.savedPath(tr)))
		}
		t.list[i] = tr
		break
	}
	if !found {
		t.list = append([]domain.Transfer{tr}, t.list...)
		if len(t.list) > maxTransfersShown {
			t.list = t.list[:maxTransfersShown]
		}
	}
	if tr.Direction() == domain.Incoming && tr.State() == domain.TransferOffered {
		u.offer.queue(tr)
		u.nextDialog()
	} else {
		u.offer.drop(tr.ID())
		if tr.State().Terminal() {
			delete(u.offer.asked, tr.ID())
		}
		if u.overlay == pageOffer && u.offer.current.ID() == tr.ID() {
			if tr.State().Terminal() {
				u.offerOutcome(tr) // the dialog says how it ended; Esc closes it
			} else {
				u.closeOverlay()
			}
		}
	}
	t.render()
	if u.conv.isOpen(tr.Peer()) && !u.conv.searching {
		u.conv.render(u)
	}
}

// transfersWith lists the transfers with peer that the transfers pane
// holds, oldest first, for the conversation's timeline.
func (u *UI) transfersWith(peer domain.Username) []domain.Transfer {
	var out []domain.Transfer
	for _, tr := range slices.Backward(u.transfers.list) {
		if tr.Peer().Equal(peer) {
			out = append(out, tr)
		}
	}
	slices.SortStableFunc(out, func(a, b domain.Transfer) int { return a.CreatedAt().Compare(b.CreatedAt()) })
	return out
}

func (t *transfersPane) selected() (domain.Transfer, bool) {
	row, _ := t.table.GetSelection()
	if row < 0 || row >= len(t.list) {
		return domain.Transfer{}, false
	}
	return t.list[row], true
}

func (t *transfersPane) move(step int) {
	if len(t.list) == 0 {
		return
	}
	row, _ := t.table.GetSelection()
	t.table.Select(min(max(row+step, 0), len(t.list)-1), 0)
}

func (t *transfersPane) render() {
	row, _ := t.table.GetSelection()
	t.table.Clear()
	if len(t.list) == 0 {
		t.table.SetCell(0, 0, tview.NewTableCell("[::d]No transfers. Ctrl-O or /send PATH offers a file.[::-]").SetSelectable(false))
		return
	}
	for i, tr := range t.list {
		t.table.SetCell(i, 0, tview.NewTableCell(transferLine(tr, time.Now())).SetExpansion(1))
	}
	t.table.Select(min(max(row, 0), len(t.list)-1), 0)
}

// transferLine is one row of the transfers pane.
func transferLine(tr domain.Transfer, _ time.Time) string {
	var b strings.Builder
	if tr.Direction() == domain.Incoming {
		b.WriteString("↓ " + escapeLine(tr.Peer().String()) + " ")
	} else {
		b.WriteString("↑ to " + escapeLine(tr.Peer().String()) + " ")
	}
	b.WriteString(transferWhat(tr) + " ")
	switch st := tr.State(); st {
	case domain.TransferOffered:
		if tr.Direction() == domain.Incoming {
			b.WriteString("[teal::b]offered[-::-] — a accept · d decline")
		} else {
			b.WriteString("[::d]waiting for an answer[::-]")
		}
	case domain.TransferAccepted, domain.TransferInProgress, domain.TransferInterrupted, domain.TransferVerifying:
		b.WriteString(progressBar(tr.Done(), tr.Total(), progressWidth))
		fmt.Fprintf(&b, " %3d%%", percent(tr.Done(), tr.Total()))
		if st == domain.TransferInProgress && tr.Rate() > 0 {
			fmt.Fprintf(&b, " %s/s ETA %s", humanBytes(int64(tr.Rate())), formatETA(tr.ETA()))
		}
		if p := tr.FilePath(); p != domain.FilePathNone && st == domain.TransferInProgress {
			b.WriteString(" [::d]via " + string(p) + "[::-]")
		}
		if st != domain.TransferInProgress {
			b.WriteString(" " + stateWord(st))
		}
	case domain.TransferCompleted:
		b.WriteString("[green]✓ completed[-]")
		if avg, el := tr.AverageRate(), tr.Elapsed(); avg > 0 {
			fmt.Fprintf(&b, " in %s, average %s/s", formatETA(el), humanBytes(int64(avg)))
		}
		if p := tr.FilePath(); p != domain.FilePathNone {
			b.WriteString(" via " + string(p))
		}
		if s := tr.SavedAs(); s != "" {
			b.WriteString(" — saved as " + escapeLine(s))
		}
	case domain.TransferFailed:
		b.WriteString(failedWords(tr))
	default:
		b.WriteString("[::d]" + escapeLine(outcomeWords(tr)) + "[::-]")
	}
	return b.String()
}

// transferWhat is what a transfer moves: "[::b]name[::-] (3 files) 2.1 MiB".
func transferWhat(tr domain.Transfer) string {
	m := tr.Manifest()
	s := "[::b]" + escapeLine(m.Name) + "[::-]"
	if m.IsFolder() {
		s += " (" + plural(len(m.Files), "file") + ")"
	}
	return s + " " + humanBytes(tr.Total())
}

// failedWords is a failed transfer's mark and reason.
func failedWords(tr domain.Transfer) string {
	if r := tr.Reason(); r != "" {
		return "[red]✗ failed[-]: " + escapeLine(r)
	}
	return "[red]✗ failed[-]"
}

func stateWord(s domain.TransferState) string { return strings.ReplaceAll(s.String(), "_", " ") }

// progressBar draws done/total as a bar of width cells.
func progressBar(done, total int64, width int) string {
	filled := width
	if total > 0 {
		filled = int(float64(width) * float64(min(max(done, 0), total)) / float64(total))
	}
	return "[green]" + strings.Repeat("█", filled) + "[-][::d]" + strings.Repeat("░", width-filled) + "[::-]"
}

func percent(done, total int64) int {
	if total <= 0 {
		return 100
	}
	return int(math.Floor(100 * float64(min(max(done, 0), total)) / float64(total)))
}

// humanBytes writes a size with a binary unit: 512 B, 1.5 KiB, 3.2 GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatETA writes a duration as m:ss or h:mm:ss.
func formatETA(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s%3600/60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// sendFile offers a file or folder to the current peer.
func (u *UI) sendFile(path string) {
	peer := u.current()
	switch {
	case peer.IsZero():
		u.showNotice("[red]✗[-] pick a peer first, then send the file")
		return
	case strings.TrimSpace(path) == "":
		u.showNotice("[red]✗[-] usage: /send PATH (Tab completes), or Ctrl-O to browse")
		return
	}
	u.spawn("send "+path, func(ctx context.Context) (func(), error) {
		tr, err := u.client.SendFile(ctx, peer, path)
		if err != nil {
			return nil, err
		}
		return func() {
			u.updateTransfer(tr)
			u.showNotice("offered " + escapeLine(tr.Manifest().Name) + " to " + escapeLine(peer.String()))
		}, nil
	})
}

// answer accepts or declines an offer.
func (u *UI) answer(tr domain.Transfer, accept bool) {
	if tr.Direction() != domain.Incoming || tr.State() != domain.TransferOffered {
		u.showNotice("[red]✗[-] that transfer is not an offer waiting for an answer")
		return
	}
	id, name := tr.ID(), tr.Manifest().Name
	u.offer.drop(id)
	if accept {
		u.spawn("accept "+name, func(ctx context.Context) (func(), error) {
			return func() { u.showNotice("accepted " + escapeLine(name)) }, u.client.AcceptTransfer(ctx, id)
		})
		return
	}
	u.spawn("decline "+name, func(ctx context.Context) (func(), error) {
		return func() { u.showNotice("declined " + escapeLine(name)) }, u.client.DeclineTransfer(ctx, id)
	})
}

func (u *UI) cancel(tr domain.Transfer) {
	if tr.State().Terminal() {
		u.showNotice("[red]✗[-] that transfer is already over")
		return
	}
	id, name := tr.ID(), tr.Manifest().Name
	u.spawn("cancel "+name, func(ctx context.Context) (func(), error) {
		return func() { u.showNotice("cancelled " + escapeLine(name)) }, u.client.CancelTransfer(ctx, id)
	})
}

func (u *UI) answerSelected(accept bool) {
	if tr, ok := u.transfers.selected(); ok {
		u.answer(tr, accept)
	}
}

// savedPath is where a received transfer is on disk ("" before its first
// file got its final name).
func (u *UI) savedPath(tr domain.Transfer) string {
	rel := tr.SavedAs()
	if rel == "" || u.opts.DownloadDir == "" {
		return rel
	}
	return filepath.Join(u.opts.DownloadDir, filepath.FromSlash(rel))
}

// showSelectedPath tells where the selected transfer's file is.
func (u *UI) showSelectedPath() {
	tr, ok := u.transfers.selected()
	if !ok {
		return
	}
	switch p := u.savedPath(tr); {
	case tr.Direction() == domain.Outgoing && tr.Source() != "":
		u.showNotice("sent from " + escapeLine(tr.Source()))
	case p != "":
		u.showNotice("saved to " + escapeLine(p))
	default:
		u.showNotice(escapeLine(tr.Manifest().Name) + " is not saved yet (" + stateWord(tr.State()) + ")")
	}
}

func (u *UI) cancelSelected() {
	if tr, ok := u.transfers.selected(); ok {
		u.cancel(tr)
	}
}

// findTransfer finds a transfer by an ID prefix, or the newest one that ok
// accepts when prefix is empty.
func (u *UI) findTransfer(prefix string, ok func(domain.Transfer) bool) (domain.Transfer, bool) {
	prefix = strings.ToLower(prefix)
	for _, tr := range u.transfers.list {
		if prefix != "" && strings.HasPrefix(tr.ID().String(), prefix) {
			return tr, true
		}
		if prefix == "" && ok(tr) {
			return tr, true
		}
	}
	return domain.Transfer{}, false
}

func (u *UI) answerByID(prefix string, accept bool) {
	tr, ok := u.findTransfer(prefix, func(t domain.Transfer) bool {
		return t.Direction() == domain.Incoming && t.State() == domain.TransferOffered
	})
	if !ok {
		u.showNotice("[red]✗[-] no offer waiting for an answer")
		return
	}
	u.answer(tr, accept)
}

func (u *UI) cancelByID(prefix string) {
	tr, ok := u.findTransfer(prefix, func(t domain.Transfer) bool { return !t.State().Terminal() })
	if !ok {
		u.showNotice("[red]✗[-] no transfer to cancel")
		return
	}
	u.cancel(tr)
}
