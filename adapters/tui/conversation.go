package tui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// conversationPane shows the messages with the current peer: timestamps, day
// separators, delivery marks, a typing indicator in the title, scrollback.
type conversationPane struct {
	view     *tview.TextView
	peer     domain.Username // zero when no conversation is open
	msgs     []domain.Message
	loaded   bool
	follow   bool // stay at the newest line
	typingAt map[string]time.Time
	// unreachable holds, by peer name key, why a peer the registry lists
	// online cannot be reached now (from ReachabilityEvent).
	unreachable map[string]string
	searching   bool
	query       string
	results     []domain.Message
	unseen      int // incoming messages not read when the conversation was opened: the marker goes before them
}

// maxConversation bounds the messages kept for the open conversation.
const maxConversation = maxHistoryLimit

func newConversationPane(u *UI) *conversationPane {
	c := &conversationPane{
		view:     tview.NewTextView(),
		follow:   true,
		typingAt: make(map[string]time.Time),

		unreachable: make(map[string]string),
	}
	c.view.SetDynamicColors(true).SetRegions(false).SetScrollable(true).SetWrap(true).
		SetBorder(true).SetTitleAlign(tview.AlignLeft)
	c.render(u)
	return c
}

func (c *conversationPane) isOpen(peer domain.Username) bool {
	return !c.peer.IsZero() && c.peer.Equal(peer)
}

func (c *conversationPane) open(u *UI, peer domain.Username) {
	c.unseen = 0
	if pv, ok := u.peers.view(peer); ok {
		c.unseen = pv.Unread
	}
	c.peer, c.msgs, c.loaded, c.follow = peer, nil, false, true
	c.searching, c.results = false, nil
	c.render(u)
}

// setHistory installs the loaded history, keeping messages that arrived while
// it was loading.
func (c *conversationPane) setHistory(u *UI, peer domain.Username, msgs []domain.Message) {
	if !c.isOpen(peer) {
		return
	}
	early := c.msgs
	c.msgs = slices.Clone(msgs)
	for _, m := range early {
		c.merge(m)
	}
	c.loaded = true
	c.render(u)
}

// merge adds m or updates the copy we have (same ID). A copy never goes back
// to queued from a later state: Send's result can reach us after the events
// that moved the message on.
func (c *conversationPane) merge(m domain.Message) {
	for i := range c.msgs {
		if c.msgs[i].ID() != m.ID() {
			continue
		}
		have := c.msgs[i].State()
		if have.CanMove(m.State()) && (m.State() != domain.MessageQueued || have == domain.MessageFailed) {
			c.msgs[i] = m
		}
		return
	}
	c.msgs = append(c.msgs, m)
	if len(c.msgs) > maxConversation {
		c.msgs = c.msgs[len(c.msgs)-maxConversation:]
	}
}

func (c *conversationPane) add(u *UI, m domain.Message) {
	c.merge(m)
	if m.Direction() == domain.Incoming {
		delete(c.typingAt, m.From().Key())
	}
	c.render(u)
}

// setState moves one of our messages to a new delivery state.
func (c *conversationPane) setState(u *UI, peer domain.Username, id domain.MessageID, st domain.MessageState) {
	if !c.isOpen(peer) {
		return
	}
	for i := range c.msgs {
		if c.msgs[i].ID() == id {
			m := c.msgs[i]
			c.msgs[i] = domain.RestoreMessage(m.ID(), m.From(), m.To(), m.SentAt(), m.Body(), m.Direction(), st)
			c.render(u)
			return
		}
	}
}

func (c *conversationPane) typing(u *UI, from domain.Username) {
	c.typingAt[from.Key()] = time.Now()
	c.renderTitle(u)
}

// pruneTyping forgets typing indicators that have expired.
func (c *conversationPane) pruneTyping() {
	for k, at := range c.typingAt {
		if time.Since(at) >= typingLifetime {
			delete(c.typingAt, k)
		}
	}
}

// scroll moves the view a page up (-1) or down (1).
func (c *conversationPane) scroll(dir int) {
	row, _ := c.view.GetScrollOffset()
	_, _, _, h := c.view.GetInnerRect()
	page := max(h-1, 1)
	row += dir * page
	lines := c.view.GetWrappedLineCount()
	if row+h >= lines {
		c.follow = true
		c.view.ScrollToEnd()
		return
	}
	c.follow = false
	c.view.ScrollTo(max(row, 0), 0)
}

func (c *conversationPane) showSearch(u *UI, query string, results []domain.Message) {
	c.searching, c.query, c.results = true, query, results
	c.render(u)
	c.view.ScrollToBeginning()
}

func (c *conversationPane) endSearch(u *UI) {
	c.searching, c.results = false, nil
	c.render(u)
}

// renderTitle draws the title: peer, marks, typing indicator.
func (c *conversationPane) renderTitle(u *UI) {
	switch {
	case c.searching:
		c.view.SetTitle(" Search: " + escapeLine(c.query) + " [::d](Esc to go back)[::-] ")
		return
	case c.peer.IsZero():
		c.view.SetTitle(" Conversation ")
		return
	}
	var b strings.Builder
	b.WriteString(" ")
	b.WriteString(escapeLine(c.peer.String()))
	if pv, ok := u.peers.view(c.peer); ok {
		if pv.Peer.Online {
			b.WriteString(" [green]online[-]")
			if !pv.Path.IsZero() {
				b.WriteString(" [::d]· " + escapeLine(pv.Path.String()) + "[::-]")
			}
		} else {
			b.WriteString(" [::d]offline" + lastSeen(pv.Peer.LastSeen, time.Now(), u.opts.Location) + "[::-]")
		}
		if pv.Verified {
			b.WriteString(" [green]✔ verified[-]")
		}
		if pv.KeyChanged {
			b.WriteString(" [red::b]⚠ key changed: sending blocked[-::-]")
		}
	}
	if at, ok := c.typingAt[c.peer.Key()]; ok {
		if time.Since(at) < typingLifetime {
			b.WriteString(" [teal::i]typing…[-::-]")
		} else {
			delete(c.typingAt, c.peer.Key())
		}
	}
	b.WriteString(" ")
	c.view.SetTitle(b.String())
}

func (c *conversationPane) render(u *UI) {
	c.renderTitle(u)
	switch {
	case c.searching:
		c.view.SetText(renderSearch(c.results, u.opts.Location))
		return
	case c.peer.IsZero():
		c.view.SetText("[::d]Pick a peer on the left (Ctrl-N, or Ctrl-F and type a name), then type a message below.\nF1 lists every key and command.[::-]")
		return
	}
	trs := u.transfersWith(c.peer)
	if len(c.msgs) == 0 && len(trs) == 0 && c.loaded {
		c.view.SetText("[::d]No messages yet with " + escapeLine(c.peer.String()) + ".[::-]")
		return
	}
	text := renderMessages(c.msgs, trs, u.opts.Location, c.unseen, u.savedPath)
	if reason, ok := c.unreachable[c.peer.Key()]; ok && waitingToSend(c.msgs) {
		text += "\n[yellow]… trying to reach " + escapeLine(c.peer.String()) + "…[-] [::d](" + escapeLine(reason) + ")[::-]"
	}
	c.view.SetText(text)
	if c.follow {
		c.view.ScrollToEnd()
	}
}

// lastSeen says when an offline peer was last online: ", last seen 14:05"
// today, ", last seen 2 Jan 14:05" before; "" when unknown.
func lastSeen(at, now time.Time, loc *time.Location) string {
	if at.IsZero() {
		return ""
	}
	at, now = at.In(loc), now.In(loc)
	if y, m, d := at.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return ", last seen " + at.Format("15:04")
	}
	if at.Year() == now.Year() {
		return ", last seen " + at.Format("2 Jan 15:04")
	}
	return ", last seen " + at.Format("2 Jan 2006")
}

// setReachable records whether an online peer can be reached now.
func (c *conversationPane) setReachable(u *UI, e ports.ReachabilityEvent) {
	if e.Reachable {
		delete(c.unreachable, e.Peer.Key())
	} else {
		c.unreachable[e.Peer.Key()] = e.Reason
	}
	if c.isOpen(e.Peer) {
		c.render(u)
	}
}

// waitingToSend reports whether an outgoing message still waits for its
// first send.
func waitingToSend(msgs []domain.Message) bool {
	for _, m := range slices.Backward(msgs) {
		if m.Direction() == domain.Outgoing && m.State() == domain.MessageQueued {
			return true
		}
	}
	return false
}

// renderMessages is the text of a conversation: a separator line when the
// day changes, then "15:04 name: text mark" per message and a line per
// transfer with the peer (trs, oldest first) at the time it was offered; a
// "new messages" line before the last unseen incoming messages. saved says
// where a received transfer is on disk.
func renderMessages(msgs []domain.Message, trs []domain.Transfer, loc *time.Location, unseen int, saved func(domain.Transfer) string) string {
	var b strings.Builder
	var day string
	marker := len(msgs) // index of the first unseen message
	for i, n := len(msgs)-1, 0; i >= 0 && n < unseen; i-- {
		if msgs[i].Direction() == domain.Incoming {
			marker, n = i, n+1
		}
	}
	dayLine := func(at time.Time) {
		if d := at.Format("Monday, 2 January 2006"); d != day {
			day = d
			fmt.Fprintf(&b, "[::d]──── %s ────[::-]\n", d)
		}
	}
	t := 0
	for i := 0; i <= len(msgs); i++ {
		// The transfers offered before this message (all that remain after the last).
		for ; t < len(trs) && (i == len(msgs) || trs[t].CreatedAt().Before(msgs[i].SentAt())); t++ {
			at := trs[t].CreatedAt().In(loc)
			dayLine(at)
			b.WriteString(timelineTransferLine(trs[t], at, saved(trs[t])))
			b.WriteString("\n")
		}
		if i == len(msgs) {
			break
		}
		m := msgs[i]
		if i == marker {
			fmt.Fprintf(&b, "[red]──── %s ────[-]\n", plural(unseen, "new message"))
		}
		at := m.SentAt().In(loc)
		dayLine(at)
		b.WriteString(messageLine(m, at))
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// timelineTransferLine is a transfer in the conversation: "15:04 ↑
// report.pdf 2.1 MiB — completed", "15:04 ↓ photo.jpg 3.0 MiB — completed,
// saved to PATH", "… — declined by bob: too large", with its progress while
// it runs. saved is where a received transfer is on disk ("" if not yet).
func timelineTransferLine(tr domain.Transfer, at time.Time, saved string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[::d]%s[::-] ", at.Format("15:04"))
	if tr.Direction() == domain.Incoming {
		b.WriteString("[::b]↓[::-] ")
	} else {
		b.WriteString("[teal::b]↑[-::-] ")
	}
	b.WriteString(transferWhat(tr) + " — ")
	switch st := tr.State(); st {
	case domain.TransferOffered:
		if tr.Direction() == domain.Incoming {
			b.WriteString("[teal]offered[-] [::d](Ctrl-T: a accept · d decline)[::-]")
		} else {
			b.WriteString("[::d]waiting for an answer[::-]")
		}
	case domain.TransferAccepted, domain.TransferInProgress, domain.TransferInterrupted, domain.TransferVerifying:
		fmt.Fprintf(&b, "%s %d%%", stateWord(st), percent(tr.Done(), tr.Total()))
	case domain.TransferCompleted:
		b.WriteString("[green]completed[-]")
		if tr.Direction() == domain.Incoming && saved != "" {
			b.WriteString(", saved to " + escapeLine(saved))
		}
	case domain.TransferFailed:
		b.WriteString(failedWords(tr))
	default:
		b.WriteString("[::d]" + escapeLine(outcomeWords(tr)) + "[::-]")
	}
	return b.String()
}

// outcomeWords says how a declined or cancelled transfer ended: "declined
// by bob: too large" as the reason says it, or the state and the reason.
func outcomeWords(tr domain.Transfer) string {
	what := stateWord(tr.State())
	if r := tr.Reason(); strings.HasPrefix(r, what) {
		return r
	} else if r != "" {
		return what + ": " + r
	}
	return what
}

func messageLine(m domain.Message, at time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[::d]%s[::-] ", at.Format("15:04"))
	if m.Direction() == domain.Outgoing {
		b.WriteString("[teal::b]me[-::-]: ")
	} else {
		b.WriteString("[::b]" + escapeLine(m.From().String()) + "[::-]: ")
	}
	b.WriteString(Escape(m.Body()))
	if m.Direction() == domain.Outgoing {
		b.WriteString(" " + deliveryMark(m.State()))
	}
	return b.String()
}

// deliveryMark is the mark of an outgoing message's state.
func deliveryMark(s domain.MessageState) string {
	switch s {
	case domain.MessageQueued:
		return "[::d]…[::-]"
	case domain.MessageSent:
		return "[::d]✓[::-]"
	case domain.MessageStored:
		return "[::d]✓✉[::-]" // sealed in the peer's mailbox at the registry
	case domain.MessageDelivered:
		return "[green]✓✓[-]"
	case domain.MessageRead:
		return "[blue::b]✓✓[-::-]"
	case domain.MessageFailed:
		return "[red]✗ not sent[-]"
	}
	return ""
}

func renderSearch(results []domain.Message, loc *time.Location) string {
	if len(results) == 0 {
		return "[::d]Nothing found.[::-]"
	}
	var b strings.Builder
	for _, m := range results {
		at := m.SentAt().In(loc)
		fmt.Fprintf(&b, "[::d]%s[::-] %s → %s: %s\n", at.Format("2006-01-02 15:04"),
			escapeLine(m.From().String()), escapeLine(m.To().String()), Escape(m.Body()))
	}
	return strings.TrimSuffix(b.String(), "\n")
}
