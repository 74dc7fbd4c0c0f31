package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// pageRequests is the message requests screen.
const pageRequests = "requests"

// ScopeRequests is the message requests screen's key scope.
const ScopeRequests Scope = "message requests"

// defaultAwayAfter is Options.AwayAfter's default.
const defaultAwayAfter = 10 * time.Minute

// contactBindings are the keys of the requests screen and the global key
// that opens it (appended to DefaultBindings).
func contactBindings() []Binding {
	return []Binding{
		onBar(key(ScopeGlobal, tcell.KeyF3, "F3", "message requests: what strangers sent, to accept, decline or block", (*UI).showRequests)),
		key(ScopeGlobal, tcell.KeyF4, "F4", "collapse or expand the directory section of the peers pane (people who are not contacts)", (*UI).toggleDirectory),
		key(ScopeRequests, tcell.KeyUp, "Up/Down", "move", nil),
		char(ScopeRequests, 'a', "accept: the sender becomes a contact and their messages join the history", func(u *UI) { u.answerRequest("accept") }),
		char(ScopeRequests, 'd', "decline: drop what they sent (they may write again)", func(u *UI) { u.answerRequest("decline") }),
		char(ScopeRequests, 'b', "block: drop it and refuse their key from now on", func(u *UI) { u.answerRequest("block") }),
		key(ScopeRequests, tcell.KeyEscape, "Esc", "close", (*UI).closeOverlay),
		key(ScopeRequests, tcell.KeyF3, "F3", "close", (*UI).closeOverlay),
	}
}

// contactCommands are the `/` commands about contacts and status
// (appended to DefaultCommands).
func contactCommands() []Command {
	return []Command{
		{Name: "add", Args: "NAME", Description: "add a contact by exact name (also finds people the registry does not list)",
			Run: func(u *UI, arg string) { u.nameCommand("add", arg, u.client.AddContact, "added %s to your contacts") }},
		{Name: "requests", Description: "show the message requests (F3)", Run: func(u *UI, _ string) { u.showRequests() }},
		{Name: "block", Args: "[NAME]", Description: "block a peer (the current one without NAME): its key is refused from now on",
			Run: func(u *UI, arg string) { u.nameCommand("block", arg, u.client.Block, "blocked %s") }},
		{Name: "unblock", Args: "NAME", Description: "unblock a peer (it is a stranger again: its messages are requests)",
			Run: func(u *UI, arg string) { u.nameCommand("unblock", arg, u.client.Unblock, "unblocked %s") }},
		{Name: "nick", Args: "[NAME] NICK", Description: "set a local nickname for NAME (the current peer without NAME; no NICK clears it)",
			Run: (*UI).nickCommand},
		{Name: "status", Args: "online|away|busy [TEXT]", Description: "set your status and an optional text (at most 140 characters), told to your contacts",
			Run: (*UI).statusCommand},
	}
}

// requestsScreen is the message requests overlay.
type requestsScreen struct {
	table *tview.Table
	list  []ports.RequestView
}

func newRequestsScreen() *requestsScreen {
	t := tview.NewTable().SetSelectable(true, false).SetSelectedStyle(tcell.StyleDefault.Reverse(true))
	t.SetBorder(true).SetTitle(" Message requests — a accept · d decline · b block · Esc close ")
	return &requestsScreen{table: t}
}

// render fills the table. Everything from a stranger is escaped.
func (r *requestsScreen) render() {
	r.table.Clear()
	if len(r.list) == 0 {
		r.table.SetCell(0, 0, tview.NewTableCell("[::d]no message requests[::-]").SetSelectable(false))
		return
	}
	for i, v := range r.list {
		q := v.Request
		what := plural(q.Items-q.Offers, "message")
		if q.Offers > 0 {
			what += ", " + plural(q.Offers, "file offer")
		}
		preview := v.Preview
		if len([]rune(preview)) > 60 {
			preview = string([]rune(preview)[:60]) + "…"
		}
		line := fmt.Sprintf("%s [::d]%s[::-] — %s: %s", escapeLine(q.From.Name().String()),
			escapeLine(q.From.Fingerprint().Short()), what, escapeLine(strings.ReplaceAll(preview, "\n", " ")))
		r.table.SetCell(i, 0, tview.NewTableCell(line).SetExpansion(1))
	}
}

// selected is the request under the cursor.
func (r *requestsScreen) selected() (domain.Username, bool) {
	row, _ := r.table.GetSelection()
	if row < 0 || row >= len(r.list) {
		return domain.Username{}, false
	}
	return r.list[row].Request.From.Name(), true
}

// showRequests loads the requests and shows them.
func (u *UI) showRequests() {
	u.spawn("list requests", func(ctx context.Context) (func(), error) {
		list, err := u.client.Requests(ctx)
		if err != nil {
			return nil, err
		}
		return func() {
			if u.overlay != "" && u.overlay != pageRequests {
				return
			}
			if u.requests == nil {
				u.requests = newRequestsScreen()
			}
			u.requests.list = list
			u.requests.render()
			u.status.setRequests(u, len(list))
			u.showOverlay(pageRequests, centered(u.requests.table, 100, 20), u.requests.table)
		}, nil
	})
}

// answerRequest accepts, declines or blocks the selected request.
func (u *UI) answerRequest(how string) {
	if u.requests == nil {
		return
	}
	name, ok := u.requests.selected()
	if !ok {
		return
	}
	act := map[string]func(context.Context, domain.Username) error{
		"accept": u.client.AcceptRequest, "decline": u.client.DeclineRequest, "block": u.client.Block,
	}[how]
	done := map[string]string{"accept": "accepted %s: now a contact", "decline": "declined the request of %s", "block": "blocked %s"}[how]
	u.spawn(how+" request", func(ctx context.Context) (func(), error) {
		if err := act(ctx, name); err != nil {
			return nil, err
		}
		return func() {
			u.showNotice(fmt.Sprintf(done, escapeLine(name.String())))
			u.loadPeers()
			if u.overlay == pageRequests {
				u.showRequests()
			}
		}, nil
	})
}

// nameCommand runs a contact action on NAME, or on the current peer.
func (u *UI) nameCommand(what, arg string, act func(context.Context, domain.Username) error, done string) {
	name := u.current()
	if arg != "" {
		n, err := domain.ParseUsername(arg)
		if err != nil {
			u.showNotice("[red]✗[-] /" + what + ": " + escapeLine(err.Error()))
			return
		}
		name = n
	}
	if name.IsZero() {
		u.showNotice("[red]✗[-] /" + what + " needs a NAME (no conversation is open)")
		return
	}
	u.spawn(what, func(ctx context.Context) (func(), error) {
		if err := act(ctx, name); err != nil {
			return nil, err
		}
		return func() {
			u.showNotice(fmt.Sprintf(done, escapeLine(name.String())))
			u.loadPeers()
		}, nil
	})
}

// nickCommand is /nick [NAME] NICK.
func (u *UI) nickCommand(arg string) {
	name, nick := u.current(), arg
	if first, rest, _ := strings.Cut(arg, " "); first != "" {
		if n, err := domain.ParseUsername(first); err == nil {
			if _, known := u.peers.view(n); known || name.IsZero() {
				name, nick = n, strings.TrimSpace(rest)
			}
		}
	}
	if name.IsZero() {
		u.showNotice("[red]✗[-] /nick needs a NAME (no conversation is open)")
		return
	}
	u.spawn("nickname", func(ctx context.Context) (func(), error) {
		if err := u.client.SetNickname(ctx, name, nick); err != nil {
			return nil, err
		}
		return func() {
			u.showNotice("nickname of " + escapeLine(name.String()) + " set")
			u.loadPeers()
		}, nil
	})
}

// statusCommand is /status online|away|busy [TEXT].
func (u *UI) statusCommand(arg string) {
	word, text, _ := strings.Cut(arg, " ")
	a, err := domain.ParseAvailability(word)
	if err != nil {
		u.showNotice("[red]✗[-] /status: " + escapeLine(err.Error()))
		return
	}
	u.setStatus(domain.Status{Availability: a, Text: strings.TrimSpace(text)}, false)
}

// setStatus sets our status; auto says it was the idle timer's doing.
func (u *UI) setStatus(s domain.Status, auto bool) {
	u.autoAway = auto
	u.spawn("set status", func(ctx context.Context) (func(), error) {
		if err := u.client.SetStatus(ctx, s); err != nil {
			return nil, err
		}
		return func() { u.status.setOwnStatus(u, s) }, nil
	})
}

// inputSeen records that the user pressed a key: back from an automatic
// away. On the UI goroutine.
func (u *UI) inputSeen() {
	u.lastInput = time.Now()
	if u.autoAway {
		u.autoAway = false
		prev := u.client.Status()
		u.setStatus(domain.Status{Availability: domain.Available, Text: prev.Text}, false)
	}
}

// checkIdle turns the status away after Options.AwayAfter without a key
// (only from online: busy stays busy). On the UI goroutine.
func (u *UI) checkIdle() {
	if u.opts.AwayAfter < 0 || u.autoAway || u.lastInput.IsZero() || time.Since(u.lastInput) < u.awayAfter() {
		return
	}
	if cur := u.client.Status(); cur.Availability == domain.Available {
		u.setStatus(domain.Status{Availability: domain.Away, Text: cur.Text}, true)
	}
}

func (u *UI) awayAfter() time.Duration {
	if u.opts.AwayAfter == 0 {
		return defaultAwayAfter
	}
	return u.opts.AwayAfter
}

// toggleDirectory collapses or expands the peers pane's directory section.
func (u *UI) toggleDirectory() {
	u.peers.collapsed = !u.peers.collapsed
	u.peers.render(u)
}

// onContactEvent applies a change of relation, nickname or status.
func (u *UI) onContactEvent(e ports.ContactEvent) {
	if i := u.peers.find(e.Name); i >= 0 {
		pv := &u.peers.all[i]
		pv.Contact, pv.Blocked, pv.Nickname = e.Relation == domain.RelationContact, e.Relation == domain.RelationBlocked, e.Nickname
		pv.Status = e.Status
		u.peers.sort()
		u.peers.render(u)
	} else {
		u.loadPeers()
	}
	if u.overlay == pageRequests {
		u.showRequests()
	}
}

// onRequest tells the user a stranger wrote.
func (u *UI) onRequest(e ports.RequestEvent) {
	u.showNotice("message request from " + escapeLine(e.Request.Request.From.Name().String()) + " — F3 to see it")
	u.bell()
	u.spawn("list requests", func(ctx context.Context) (func(), error) {
		list, err := u.client.Requests(ctx)
		if err != nil {
			return nil, err
		}
		return func() {
			u.status.setRequests(u, len(list))
			if u.overlay == pageRequests {
				u.requests.list = list
				u.requests.render()
			}
		}, nil
	})
}

// contactMarks is what the peers pane writes after a name: the nickname,
// a blocked mark, a contact's status. Everything from outside is escaped.
func contactMarks(pv ports.PeerView) string {
	var b strings.Builder
	if pv.Nickname != "" {
		b.WriteString(" [::d](" + escapeLine(pv.Nickname) + ")[::-]")
	}
	if pv.Blocked {
		b.WriteString(" [red]⊘[-]")
	}
	if pv.Contact && pv.Peer.Online {
		switch pv.Status.Availability {
		case domain.Away:
			b.WriteString(" [yellow]away[-]")
		case domain.Busy:
			b.WriteString(" [red]busy[-]")
		}
		if pv.Status.Text != "" {
			b.WriteString(" [::i]" + escapeLine(pv.Status.Text) + "[::-]")
		}
	}
	return b.String()
}

// onRefused tells the user a peer asked us to wait: the messages stay
// queued and go out by themselves.
func (u *UI) onRefused(e ports.RefusedEvent) {
	why := "asks to slow down"
	if e.Reason == ports.RefusedOverQuota {
		why = "is over its quota for you"
	}
	u.showNotice(fmt.Sprintf("%s %s: your messages wait and are sent again in %s",
		escapeLine(e.Peer.String()), why, e.RetryAfter.Round(time.Second)))
}
