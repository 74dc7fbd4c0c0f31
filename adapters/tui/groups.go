package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// groupsView is the groups part of the UI: their rows at the end of the
// conversation list (with unread counts), and the group conversation when
// one is open (its member list in the title, its messages below). Owned by
// the UI goroutine.
type groupsView struct {
	list   []ports.GroupView
	shown  []domain.GroupID // group rows of the list, in order
	open   domain.GroupID   // zero: no group conversation is open
	msgs   []domain.GroupMessage
	loaded bool
	// delivered counts, for our messages in the open group, who has them.
	delivered map[domain.MessageID][2]int
}

func newGroupsView() *groupsView {
	return &groupsView{delivered: map[domain.MessageID][2]int{}}
}

// groupCommands are the `/` commands of groups (DefaultCommands adds them).
func groupCommands() []Command {
	return []Command{
		{Name: "group", Args: "new NAME MEMBER…", Description: "make a group with these members (you are its admin)",
			Run: (*UI).groupNew},
		{Name: "invite", Args: "NAME", Description: "add NAME to the open group (admins)",
			Run: func(u *UI, arg string) { u.groupMember("invite", arg, u.client.AddMember) }},
		{Name: "kick", Args: "NAME", Description: "remove NAME from the open group (admins); they are sent nothing after",
			Run: func(u *UI, arg string) { u.groupMember("kick", arg, u.client.RemoveMember) }},
		{Name: "promote", Args: "NAME", Description: "make NAME an admin of the open group (admins)",
			Run: func(u *UI, arg string) { u.groupMember("promote", arg, u.client.PromoteMember) }},
		{Name: "rename", Args: "NAME", Description: "rename the open group (admins)",
			Run: (*UI).groupRename},
		{Name: "leave", Description: "leave the open group",
			Run: func(u *UI, _ string) { u.groupLeave() }},
		{Name: "members", Description: "list the members of the open group",
			Run: func(u *UI, _ string) { u.groupMembers() }},
	}
}

// groupOpen reports whether a group conversation is open.
func (u *UI) groupOpen() bool { return u.groups != nil && !u.groups.open.IsZero() }

func (u *UI) openGroupView() (ports.GroupView, bool) {
	for _, v := range u.groups.list {
		if v.Group.ID() == u.groups.open {
			return v, true
		}
	}
	return ports.GroupView{}, false
}

// loadGroups fetches the groups again.
func (u *UI) loadGroups() {
	u.spawn("list groups", func(ctx context.Context) (func(), error) {
		list, err := u.client.Groups(ctx)
		if err != nil {
			return nil, err
		}
		return func() {
			u.groups.list = list
			u.peers.render(u)
			u.conv.render(u)
		}, nil
	})
}

// renderGroupRows adds a row per group whose name matches the peers
// filter to the conversation list from row first; it returns how many and
// which is selected (-1: none).
func (u *UI) renderGroupRows(table *tview.Table, first int, filter string) (int, int) {
	if u.groups == nil {
		return 0, -1
	}
	u.groups.shown = u.groups.shown[:0]
	needle := strings.ToLower(filter)
	selected := -1
	for _, v := range u.groups.list {
		if needle != "" && !strings.Contains(strings.ToLower(v.Group.Name()), needle) {
			continue
		}
		i := len(u.groups.shown)
		u.groups.shown = append(u.groups.shown, v.Group.ID())
		var b strings.Builder
		b.WriteString("[teal]#[-] " + escapeLine(v.Group.Name()))
		fmt.Fprintf(&b, " [::d]%d[::-]", v.Group.Size())
		if !v.Member {
			b.WriteString(" [::d](left)[::-]")
		}
		if v.Unread > 0 {
			fmt.Fprintf(&b, " [::b](%d)[::-]", v.Unread)
		}
		table.SetCell(first+i, 0, tview.NewTableCell(b.String()).SetExpansion(1))
		if v.Group.ID() == u.groups.open {
			selected = first + i
		}
	}
	return len(u.groups.shown), selected
}

// openGroupRow opens the i-th group row of the list.
func (u *UI) openGroupRow(i int) {
	if i < 0 || i >= len(u.groups.shown) {
		return
	}
	u.openGroup(u.groups.shown[i])
}

// openGroup makes group id the open conversation and loads its history.
func (u *UI) openGroup(id domain.GroupID) {
	if u.groups.open == id {
		return
	}
	u.conv.open(u, domain.Username{})
	u.groups.open, u.groups.msgs, u.groups.loaded = id, nil, false
	clear(u.groups.delivered)
	for i := range u.groups.list {
		if u.groups.list[i].Group.ID() == id {
			u.groups.list[i].Unread = 0
		}
	}
	limit := u.opts.HistoryLimit
	u.spawn("load group history", func(ctx context.Context) (func(), error) {
		msgs, err := u.client.GroupHistory(ctx, id, limit)
		if err != nil {
			return nil, err
		}
		if err := u.client.MarkGroupRead(ctx, id); err != nil {
			return nil, err
		}
		return func() {
			if u.groups.open == id {
				u.groups.msgs, u.groups.loaded = msgs, true
				u.conv.render(u)
			}
		}, nil
	})
	u.peers.render(u)
	u.conv.render(u)
}

// closeGroup leaves the group conversation (a peer's is opened instead).
func (u *UI) closeGroup() {
	if u.groups != nil {
		u.groups.open = domain.GroupID{}
	}
}

// renderGroup draws the open group conversation: name and members in the
// title, messages with "delivered to n of m" for ours.
func (u *UI) renderGroup(c *conversationPane) {
	v, ok := u.openGroupView()
	if !ok {
		c.view.SetTitle(" Group ")
		c.view.SetText("[::d]Loading the group…[::-]")
		return
	}
	g := v.Group
	var members []string
	for _, m := range g.Members() {
		name := escapeLine(m.Name().String())
		if g.IsAdmin(m.Name()) {
			name += "★"
		}
		members = append(members, name)
	}
	title := " # " + escapeLine(g.Name()) + " [::d]· " + strings.Join(members, ", ") + "[::-] "
	if !v.Member {
		title += "[::d](you left or were removed)[::-] "
	}
	c.view.SetTitle(title)
	if len(u.groups.msgs) == 0 {
		if u.groups.loaded {
			c.view.SetText("[::d]No messages yet in " + escapeLine(g.Name()) + ". /members lists who is in it.[::-]")
		}
		return
	}
	var b strings.Builder
	for i, m := range u.groups.msgs {
		if i > 0 {
			b.WriteByte('\n')
		}
		at := m.SentAt().In(u.opts.Location).Format("15:04")
		who := escapeLine(m.From().String())
		if m.Direction() == domain.Outgoing {
			who = "me"
		}
		fmt.Fprintf(&b, "[::d]%s[::-] [::b]%s[::-]: %s", at, who, Escape(m.Body()))
		if m.Direction() == domain.Outgoing {
			if d, ok := u.groups.delivered[m.ID()]; ok {
				fmt.Fprintf(&b, " [::d]✓ %d of %d[::-]", d[0], d[1])
			}
		}
	}
	c.view.SetText(b.String())
	if c.follow {
		c.view.ScrollToEnd()
	}
}

// handleGroupEvent applies a group event; false if ev is not one.
func (u *UI) handleGroupEvent(ev ports.Event) bool {
	switch e := ev.(type) {
	case ports.GroupMessageEvent:
		m := e.Message
		if u.groups.open == m.Group() {
			if !slices.ContainsFunc(u.groups.msgs, func(x domain.GroupMessage) bool { return x.ID() == m.ID() }) {
				u.groups.msgs = append(u.groups.msgs, m)
				if len(u.groups.msgs) > maxConversation {
					u.groups.msgs = u.groups.msgs[len(u.groups.msgs)-maxConversation:]
				}
			}
			if m.Direction() == domain.Incoming {
				id := m.Group()
				u.spawn("mark group read", func(ctx context.Context) (func(), error) { return nil, u.client.MarkGroupRead(ctx, id) })
			}
			u.conv.render(u)
			return true
		}
		if m.Direction() == domain.Incoming {
			for i := range u.groups.list {
				if u.groups.list[i].Group.ID() == m.Group() {
					u.groups.list[i].Unread++
				}
			}
			u.peers.render(u)
			u.bell()
		}
	case ports.GroupDeliveryEvent:
		if u.groups.open == e.Group && e.Of > 0 {
			u.groups.delivered[e.ID] = [2]int{e.Delivered, e.Of}
			u.conv.render(u)
		}
	case ports.GroupChangedEvent:
		found := false
		for i := range u.groups.list {
			if u.groups.list[i].Group.ID() == e.Group.ID() {
				u.groups.list[i].Group, u.groups.list[i].Member = e.Group, e.Member
				found = true
			}
		}
		if !found {
			u.groups.list = append(u.groups.list, ports.GroupView{Group: e.Group, Member: e.Member})
			u.showNotice("you are in a new group: " + escapeLine(e.Group.Name()))
		}
		u.peers.render(u)
		u.conv.render(u)
	case ports.GroupFileEvent:
		u.showNotice(escapeLine(e.From.String()) + "'s offer " + e.Transfer.Short() + " is for the group")
	default:
		return false
	}
	return true
}

// sendGroupText sends text to the open group.
func (u *UI) sendGroupText(text string) {
	id := u.groups.open
	u.spawn("send to group", func(ctx context.Context) (func(), error) {
		_, err := u.client.SendGroup(ctx, id, text)
		return nil, err // the GroupMessageEvent shows it
	})
}

// groupNew is "/group new NAME MEMBER…".
func (u *UI) groupNew(arg string) {
	fields := strings.Fields(arg)
	if len(fields) < 3 || fields[0] != "new" {
		u.showNotice("[red]✗[-] usage: /group new NAME MEMBER…")
		return
	}
	name := fields[1]
	var members []domain.Username
	for _, f := range fields[2:] {
		m, err := domain.ParseUsername(f)
		if err != nil {
			u.showError("group new", err)
			return
		}
		members = append(members, m)
	}
	u.spawn("make group", func(ctx context.Context) (func(), error) {
		g, err := u.client.CreateGroup(ctx, name, members)
		if err != nil {
			return nil, err
		}
		return func() {
			if !slices.ContainsFunc(u.groups.list, func(v ports.GroupView) bool { return v.Group.ID() == g.ID() }) {
				u.groups.list = append(u.groups.list, ports.GroupView{Group: g, Member: true})
			}
			u.openGroup(g.ID())
			u.showNotice("group " + escapeLine(g.Name()) + " made with " + plural(g.Size()-1, "member"))
		}, nil
	})
}

// needGroup returns the open group, or tells the user to open one.
func (u *UI) needGroup(what string) (domain.GroupID, bool) {
	if !u.groupOpen() {
		u.showNotice("[red]✗[-] /" + what + ": open a group first")
		return domain.GroupID{}, false
	}
	return u.groups.open, true
}

func (u *UI) groupMember(what, arg string, do func(context.Context, domain.GroupID, domain.Username) error) {
	id, ok := u.needGroup(what)
	if !ok {
		return
	}
	name, err := domain.ParseUsername(strings.TrimSpace(arg))
	if err != nil {
		u.showNotice("[red]✗[-] usage: /" + what + " NAME")
		return
	}
	u.spawn(what, func(ctx context.Context) (func(), error) {
		if err := do(ctx, id, name); err != nil {
			return nil, err
		}
		return func() { u.showNotice("/" + what + " " + escapeLine(name.String()) + ": done") }, nil
	})
}

func (u *UI) groupRename(arg string) {
	id, ok := u.needGroup("rename")
	if !ok {
		return
	}
	if strings.TrimSpace(arg) == "" {
		u.showNotice("[red]✗[-] usage: /rename NAME")
		return
	}
	u.spawn("rename", func(ctx context.Context) (func(), error) { return nil, u.client.RenameGroup(ctx, id, arg) })
}

func (u *UI) groupLeave() {
	id, ok := u.needGroup("leave")
	if !ok {
		return
	}
	u.spawn("leave", func(ctx context.Context) (func(), error) {
		if err := u.client.LeaveGroup(ctx, id); err != nil {
			return nil, err
		}
		return func() { u.showNotice("you left the group") }, nil
	})
}

// groupMembers lists the open group's members in the notice line.
func (u *UI) groupMembers() {
	v, ok := u.openGroupView()
	if !ok {
		u.showNotice("[red]✗[-] /members: open a group first")
		return
	}
	var names []string
	for _, m := range v.Group.Members() {
		s := escapeLine(m.Name().String())
		if v.Group.IsAdmin(m.Name()) {
			s += " (admin)"
		}
		names = append(names, s)
	}
	u.showNotice(plural(len(names), "member") + ": " + strings.Join(names, ", "))
}
