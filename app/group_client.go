package app

import (
	"context"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// groupParts are the group use-cases of a Client.
type groupParts struct {
	book    *GroupBook
	fanout  *PairwiseFanout
	manage  *ManageGroup
	send    *SendGroupMessage
	receive *ReceiveGroup
	file    *SendGroupFile
}

func newGroupParts(c *Client, store ports.GroupStore, clock ports.Clock) (*groupParts, error) {
	p := &groupParts{}
	var err error
	if p.book, err = NewGroupBook(c.me, c.link, store, c.verify, clock, c.bus); err != nil {
		return nil, err
	}
	p.book.resolve = c.send.peerForSend
	p.book.mayInvite = func(ctx context.Context, from domain.Identity) bool { return c.contacts.trusted(ctx, from.Name()) }
	if p.fanout, err = NewPairwiseFanout(c.me, c.link, store, c.verify, clock, c.bus, c.opts.Retry); err != nil {
		return nil, err
	}
	p.fanout.outbox.member = func(group domain.GroupID, name domain.Username) bool {
		g, err := p.book.state(context.Background(), group)
		return err != nil || g.IsMember(name) // unknown: keep trying
	}
	if p.manage, err = NewManageGroup(p.book); err != nil {
		return nil, err
	}
	if p.send, err = NewSendGroupMessage(p.book, p.fanout, c.send); err != nil {
		return nil, err
	}
	if p.receive, err = NewReceiveGroup(p.book, p.fanout); err != nil {
		return nil, err
	}
	if p.file, err = NewSendGroupFile(p.book, c.transferFile); err != nil {
		return nil, err
	}
	return p, nil
}

// CreateGroup makes a group with us as admin.
func (c *Client) CreateGroup(ctx context.Context, name string, members []domain.Username) (domain.Group, error) {
	return c.groups.manage.Create(ctx, name, members)
}

// Groups lists our groups with unread counts.
func (c *Client) Groups(ctx context.Context) ([]ports.GroupView, error) {
	return c.groups.book.all(ctx)
}

// GroupInfo returns one group.
func (c *Client) GroupInfo(ctx context.Context, id domain.GroupID) (ports.GroupView, error) {
	g, err := c.groups.book.state(ctx, id)
	if err != nil {
		return ports.GroupView{}, err
	}
	c.groups.book.mu.Lock()
	unread := c.groups.book.unread[id]
	c.groups.book.mu.Unlock()
	return ports.GroupView{Group: g, Member: g.IsMember(c.me.Name()), Unread: unread}, nil
}

// AddMember adds a known peer to a group.
func (c *Client) AddMember(ctx context.Context, id domain.GroupID, name domain.Username) error {
	return c.groups.manage.Add(ctx, id, name)
}

// RemoveMember removes a member from a group.
func (c *Client) RemoveMember(ctx context.Context, id domain.GroupID, name domain.Username) error {
	return c.groups.manage.Remove(ctx, id, name)
}

// PromoteMember makes a member an admin.
func (c *Client) PromoteMember(ctx context.Context, id domain.GroupID, name domain.Username) error {
	return c.groups.manage.Promote(ctx, id, name)
}

// RenameGroup renames a group.
func (c *Client) RenameGroup(ctx context.Context, id domain.GroupID, name string) error {
	return c.groups.manage.Rename(ctx, id, name)
}

// LeaveGroup leaves a group.
func (c *Client) LeaveGroup(ctx context.Context, id domain.GroupID) error {
	return c.groups.manage.Leave(ctx, id)
}

// SendGroup sends text to a group.
func (c *Client) SendGroup(ctx context.Context, id domain.GroupID, text string) (domain.GroupMessage, error) {
	return c.groups.send.Handle(ctx, id, text)
}

// SendGroupFile offers a file to every member of a group.
func (c *Client) SendGroupFile(ctx context.Context, id domain.GroupID, path string) ([]domain.Transfer, error) {
	return c.groups.file.Handle(ctx, id, path)
}

// GroupHistory returns the last limit messages of a group.
func (c *Client) GroupHistory(ctx context.Context, id domain.GroupID, limit int) ([]domain.GroupMessage, error) {
	return c.groups.book.store.GroupHistory(ctx, id, time.Time{}, limit)
}

// GroupDeliveries lists where one of our messages is for each member.
func (c *Client) GroupDeliveries(ctx context.Context, id domain.GroupID, msg domain.MessageID) ([]domain.GroupDelivery, error) {
	return c.groups.book.store.GroupDeliveries(ctx, id, msg)
}

// MarkGroupRead clears a group's unread count.
func (c *Client) MarkGroupRead(_ context.Context, id domain.GroupID) error {
	c.groups.book.markRead(id)
	return nil
}
