package app

import (
	"context"
	"fmt"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// SendGroupMessage is "say this to the group": the message, stamped with
// the group's epoch, is stored and handed to the group transport, which
// delivers one copy to each member (and to nobody who is not one).
type SendGroupMessage struct {
	book      *GroupBook
	transport ports.GroupTransport
	send      *SendMessage // for its send stamps: one increasing clock for all our messages
}

// NewSendGroupMessage builds the use-case.
func NewSendGroupMessage(book *GroupBook, transport ports.GroupTransport, send *SendMessage) (*SendGroupMessage, error) {
	switch {
	case book == nil:
		return nil, errNilPort("group book")
	case transport == nil:
		return nil, errNilPort("group transport")
	case send == nil:
		return nil, errNilPort("send use-case")
	}
	return &SendGroupMessage{book: book, transport: transport, send: send}, nil
}

// Handle stores text as a message to group id and starts delivering it.
// domain.ErrNotGroupMember: we left or were removed.
func (s *SendGroupMessage) Handle(ctx context.Context, id domain.GroupID, text string) (domain.GroupMessage, error) {
	if err := domain.ValidateBody(text); err != nil {
		return domain.GroupMessage{}, err
	}
	g, err := s.book.state(ctx, id)
	if err != nil {
		return domain.GroupMessage{}, err
	}
	if !g.IsMember(s.book.me.Name()) {
		return domain.GroupMessage{}, errNotMember(g)
	}
	m, err := domain.NewOutgoingGroupMessage(id, g.Epoch(), s.book.me.Name(), text, s.send.stamp())
	if err != nil {
		return domain.GroupMessage{}, err
	}
	if err := s.transport.Deliver(ctx, g, m); err != nil {
		return domain.GroupMessage{}, fmt.Errorf("send to group %s: %w", g.Name(), err)
	}
	s.book.events.Publish(ports.GroupMessageEvent{Message: m})
	return m, nil
}
