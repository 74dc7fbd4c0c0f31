package tui

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// maxFilterLen bounds what the user can type into the peers filter.
const maxFilterLen = 64

// peersPane lists the peers: online dot, unread count, verified and
// key-changed marks; typing filters the list.
type peersPane struct {
	table  *tview.Table
	all    []ports.PeerView
	shown  []domain.Username // rows of the table, in order
	filter string
	quiet  bool // set while the table is refilled, so selection changes are ours
	// collapsed hides the directory section (people who are not
	// contacts); its header row has a zero name in shown.
	collapsed bool
	// seq counts the presence events applied; changed holds, by name key,
	// the seq of the last one for that peer. A peer list the client
	// computed before a presence event must not undo it (see setPeers).
	seq     uint64
	changed map[string]uint64
}

func newPeersPane(u *UI) *peersPane {
	p := &peersPane{table: tview.NewTable(), changed: make(map[string]uint64)}
	p.table.SetSelectable(true, false).
		SetSelectedStyle(tcell.StyleDefault.Reverse(true)).
		SetBorder(true).SetTitleAlign(tview.AlignLeft)
	p.table.SetSelectionChangedFunc(func(row, _ int) {
		if !p.quiet && row >= len(p.shown) {
			u.openGroupRow(row - len(p.shown))
			return
		}
		if p.quiet || row < 0 || row >= len(p.shown) || p.shown[row].IsZero() {
			return
		}
		u.openConversation(p.shown[row])
	})
	p.render(u)
	return p
}

// setPeers replaces the list with what the client returned for a request
// made when u.peers.seq was since. A peer whose presence event came after
// that keeps the presence the event gave: the list is older news (a list
// asked for at start-up, answered after the directory's first events,
// would otherwise show a peer offline until its next presence change).
func (u *UI) setPeers(list []ports.PeerView, since uint64) {
	p := u.peers
	newer := make(map[string]domain.Peer)
	for _, pv := range p.all {
		if k := pv.Peer.Name().Key(); p.changed[k] > since {
			newer[k] = pv.Peer
		}
	}
	list = slices.Clone(list)
	for i := range list {
		k := list[i].Peer.Name().Key()
		if peer, ok := newer[k]; ok {
			list[i].Peer = peer
			delete(newer, k)
		}
	}
	for _, peer := range newer { // heard of since, unknown to the list
		list = append(list, ports.PeerView{Peer: peer})
	}
	u.peers.all = list
	u.peers.sort()
	u.peers.render(u)
	for _, pv := range list {
		if pv.KeyChanged {
			u.keyChange.pendingFromList(pv)
		}
	}
	u.nextDialog()
}

// setPaths takes only the paths from a fresh list: how each link runs
// changes without an event, the rest of the pane keeps its own state.
func (u *UI) setPaths(list []ports.PeerView) {
	paths := make(map[string]domain.Path, len(list))
	for _, pv := range list {
		paths[pv.Peer.Name().Key()] = pv.Path
	}
	changed := false
	for i, pv := range u.peers.all {
		if p := paths[pv.Peer.Name().Key()]; p != pv.Path {
			u.peers.all[i].Path, changed = p, true
		}
	}
	if changed {
		u.peers.render(u)
		u.conv.renderTitle(u)
	}
}

// sort puts contacts first, then online peers, then by name.
func (p *peersPane) sort() {
	slices.SortStableFunc(p.all, func(a, b ports.PeerView) int {
		if a.Contact != b.Contact {
			if a.Contact {
				return -1
			}
			return 1
		}
		if a.Peer.Online != b.Peer.Online {
			if a.Peer.Online {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Peer.Name().String(), b.Peer.Name().String())
	})
}

func (p *peersPane) find(name domain.Username) int {
	for i, pv := range p.all {
		if pv.Peer.Name().Equal(name) {
			return i
		}
	}
	return -1
}

// presence updates a peer that came online, went offline or moved.
func (p *peersPane) presence(u *UI, peer domain.Peer) {
	p.seq++
	p.changed[peer.Name().Key()] = p.seq
	if i := p.find(peer.Name()); i >= 0 {
		p.all[i].Peer = peer
	} else {
		p.all = append(p.all, ports.PeerView{Peer: peer})
	}
	p.sort()
	p.render(u)
	u.conv.renderTitle(u)
}

func (p *peersPane) addUnread(u *UI, name domain.Username) {
	i := p.find(name)
	if i < 0 {
		// Someone the list does not know yet: the client's list has them,
		// with the unread count from the store.
		u.showNotice("new message from " + escapeLine(name.String()))
		u.loadPeers()
		return
	}
	p.all[i].Unread++
	p.render(u)
}

func (p *peersPane) clearUnread(u *UI, name domain.Username) {
	if i := p.find(name); i >= 0 && p.all[i].Unread != 0 {
		p.all[i].Unread = 0
		p.render(u)
	}
}

func (p *peersPane) markKeyChanged(u *UI, name domain.Username, changed bool) {
	if i := p.find(name); i >= 0 {
		p.all[i].KeyChanged = changed
		p.render(u)
	}
}

func (p *peersPane) markVerified(u *UI, name domain.Username, verified bool) {
	if i := p.find(name); i >= 0 {
		p.all[i].Verified = verified
		p.render(u)
	}
}

func (p *peersPane) view(name domain.Username) (ports.PeerView, bool) {
	if i := p.find(name); i >= 0 {
		return p.all[i], true
	}
	return ports.PeerView{}, false
}

// editFilter adds a letter to the filter (dir 1) or removes the last (dir -1).
func (p *peersPane) editFilter(u *UI, dir int, r rune) {
	switch {
	case dir < 0 && p.filter != "":
		rs := []rune(p.filter)
		p.filter = string(rs[:len(rs)-1])
	case dir > 0 && len(p.filter) < maxFilterLen:
		p.filter += string(r)
	default:
		return
	}
	p.render(u)
}

// render refills the table, keeping the current conversation selected.
func (p *peersPane) render(u *UI) {
	p.quiet = true
	defer func() { p.quiet = false }()

	p.table.Clear()
	p.shown = p.shown[:0]
	needle := strings.ToLower(p.filter)
	selected := -1
	hiddenUnread := 0
	// The directory header separates contacts from the others; with no
	// contact at all there is nothing to separate.
	hasContacts := slices.ContainsFunc(p.all, func(pv ports.PeerView) bool { return pv.Contact })
	header := !hasContacts
	for _, pv := range p.all {
		name := pv.Peer.Name()
		if needle != "" && !strings.Contains(strings.ToLower(name.String()), needle) &&
			!strings.Contains(strings.ToLower(pv.Nickname), needle) {
			hiddenUnread += pv.Unread
			continue
		}
		if !pv.Contact && !header {
			header = true
			mark := "▾"
			if p.collapsed {
				mark = "▸"
			}
			p.shown = append(p.shown, domain.Username{})
			p.table.SetCell(len(p.shown)-1, 0, tview.NewTableCell("[::d]"+mark+" directory (F4)[::-]").SetSelectable(false))
		}
		if !pv.Contact && hasContacts && p.collapsed && pv.Unread == 0 && !(u.conv != nil && u.conv.isOpen(name)) {
			continue // collapsed; someone who wrote or is open stays shown
		}
		row := len(p.shown)
		p.shown = append(p.shown, name)
		p.table.SetCell(row, 0, tview.NewTableCell(peerLine(pv)).SetExpansion(1))
		if u.conv != nil && u.conv.isOpen(name) {
			selected = row
		}
	}
	title := " Peers "
	if p.filter != "" {
		title = " Peers /" + escapeLine(p.filter) + " "
		if hiddenUnread > 0 {
			// A filter never hides that others wrote.
			title += fmt.Sprintf("+%d unread ", hiddenUnread)
		}
	}
	p.table.SetTitle(title)
	groupRows, groupSelected := u.renderGroupRows(p.table, len(p.shown), p.filter)
	if groupSelected >= 0 {
		selected = groupSelected
	}
	if len(p.shown)+groupRows == 0 {
		hint := "no peers yet"
		if p.filter != "" {
			hint = "no peer matches"
		}
		p.table.SetCell(0, 0, tview.NewTableCell("[::d]"+hint+"[::-]").SetSelectable(false))
		return
	}
	if selected < 0 && p.filter != "" {
		// The open conversation is filtered out: the selection is the
		// first match, so Enter opens what the user sees selected.
		selected = 0
	}
	if selected >= 0 {
		p.table.Select(selected, 0)
	}
}

// plural writes n and a countable noun: "1 message", "3 messages".
func plural(n int, noun string) string {
	if n != 1 {
		noun += "s"
	}
	return fmt.Sprintf("%d %s", n, noun)
}

// peerLine is one row of the peers pane.
func peerLine(pv ports.PeerView) string {
	var b strings.Builder
	if pv.Peer.Online {
		b.WriteString("[green]●[-] ")
	} else {
		b.WriteString("[::d]○[::-] ")
	}
	b.WriteString(escapeLine(pv.Peer.Name().String()))
	b.WriteString(contactMarks(pv))
	if pv.Verified {
		b.WriteString(" [green]✔[-]")
	}
	if pv.KeyChanged {
		b.WriteString(" [red::b]⚠[-::-]")
	}
	if pv.Unread > 0 {
		fmt.Fprintf(&b, " [::b](%d)[::-]", pv.Unread)
	}
	if tag := pathTag(pv.Path); tag != "" {
		b.WriteString(" [::d]" + tag + "[::-]")
	}
	return b.String()
}

// pathTag is how the peers pane shows a link's path: "lan", "direct",
// "relayed", with "·quic" when the link rides QUIC instead of TCP.
func pathTag(p domain.Path) string {
	if p.IsZero() {
		return ""
	}
	tag := string(p.Kind)
	if p.Transport == domain.TransportQUIC {
		tag += "·quic"
	}
	return tag
}

// movePeer opens the next (step 1) or previous (-1) peer in the list.
func (u *UI) movePeer(step int) {
	p := u.peers
	names := slices.DeleteFunc(slices.Clone(p.shown), domain.Username.IsZero) // without the header
	if len(names) == 0 {
		return
	}
	i := slices.IndexFunc(names, func(n domain.Username) bool { return u.conv.isOpen(n) })
	switch {
	case i < 0 && step > 0:
		i = 0
	case i < 0:
		i = len(names) - 1
	default:
		i = (i + step + len(names)) % len(names)
	}
	u.openConversation(names[i])
	p.render(u)
}

// jumpUnread opens the next peer, after the current one, with unread messages.
func (u *UI) jumpUnread() {
	p := u.peers
	n := len(p.all)
	if n == 0 {
		return
	}
	start := slices.IndexFunc(p.all, func(pv ports.PeerView) bool { return u.conv.isOpen(pv.Peer.Name()) })
	for k := 1; k <= n; k++ {
		pv := p.all[(start+k+n)%n]
		if pv.Unread > 0 {
			if p.filter != "" {
				p.filter = ""
			}
			u.openConversation(pv.Peer.Name())
			p.render(u)
			return
		}
	}
	u.showNotice("no unread messages")
}

// openSelectedPeer opens the peer selected in the peers pane, ends the
// filter (so it hides nobody afterwards) and moves to the input line.
func (u *UI) openSelectedPeer() {
	row, _ := u.peers.table.GetSelection()
	if row >= 0 && row < len(u.peers.shown) && !u.peers.shown[row].IsZero() {
		u.openConversation(u.peers.shown[row])
	}
	u.clearFilter()
}

// clearFilter empties the peers filter and moves to the input line.
func (u *UI) clearFilter() {
	if u.peers.filter != "" {
		u.peers.filter = ""
		u.peers.render(u)
	}
	u.focusInput()
}
