package app

import (
	"context"
	"fmt"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// ReceiveGroup takes the group envelopes of authenticated peers: a
// member's message is stored once (by group and ID) and acknowledged, a
// log is merged, an ask is answered. A message from someone who is not a
// member, or at an epoch our log does not hold, is dropped unacknowledged
// — for an unknown epoch we ask the sender for its log, and the sender's
// outbox writes the message again after we have caught up.
type ReceiveGroup struct {
	book   *GroupBook
	fanout *PairwiseFanout
}

// NewReceiveGroup builds the use-case.
func NewReceiveGroup(book *GroupBook, fanout *PairwiseFanout) (*ReceiveGroup, error) {
	switch {
	case book == nil:
		return nil, errNilPort("group book")
	case fanout == nil:
		return nil, errNilPort("group fan-out")
	}
	return &ReceiveGroup{book: book, fanout: fanout}, nil
}

// Handle takes one group envelope.
func (r *ReceiveGroup) Handle(ctx context.Context, from domain.Identity, env ports.Envelope) error {
	switch env.Kind {
	case ports.KindGroupMessage:
		w, err := decodeGroupMessage(env.Group)
		if err != nil {
			return fmt.Errorf("group message from %s: %w", from.Name(), err)
		}
		return r.message(ctx, from, w)
	case ports.KindGroupAck:
		w, err := decodeGroupRef(env.Group)
		if err != nil {
			return fmt.Errorf("group ack from %s: %w", from.Name(), err)
		}
		r.fanout.Acknowledged(ctx, from.Name(), domain.MessageID(w.id))
		return nil
	case ports.KindGroupLog:
		id, entries, err := decodeGroupLog(env.Group)
		if err != nil {
			return fmt.Errorf("group log from %s: %w", from.Name(), err)
		}
		return r.book.merge(ctx, from, id, entries)
	case ports.KindGroupLogAsk:
		w, err := decodeGroupAsk(env.Group)
		if err != nil {
			return fmt.Errorf("group log ask from %s: %w", from.Name(), err)
		}
		return r.book.answerAsk(ctx, from, w.group)
	case ports.KindGroupFile:
		w, err := decodeGroupRef(env.Group)
		if err != nil {
			return fmt.Errorf("group file from %s: %w", from.Name(), err)
		}
		return r.book.fileOffered(ctx, from, w.group, domain.TransferID(w.id))
	}
	return fmt.Errorf("envelope kind %d from %s is not a group envelope", env.Kind, from.Name())
}

func (r *ReceiveGroup) message(ctx context.Context, from domain.Identity, w groupMessageWire) error {
	g, known, err := r.book.knows(ctx, w.group, w.epoch)
	if err != nil {
		return err
	}
	if !known {
		r.book.ask(ctx, from.Name(), w.group)
		return fmt.Errorf("group message %s from %s at epoch %s: %w (asked for the log)", w.id, from.Name(), w.epoch.Short(), domain.ErrUnknownGroup)
	}
	sender, ok := g.Member(from.Name())
	if !ok || !sender.SameKey(from.PublicKey()) {
		return fmt.Errorf("group message %s from %s: %w", w.id, from.Name(), domain.ErrNotGroupMember)
	}
	if !g.IsMember(r.book.me.Name()) {
		return fmt.Errorf("group message %s from %s: %w", w.id, from.Name(), errNotMember(g))
	}
	m, err := domain.NewIncomingGroupMessage(w.id, w.group, w.epoch, from.Name(), w.sentAt, w.body)
	if err != nil {
		return fmt.Errorf("group message %s from %s: %w", w.id, from.Name(), err)
	}
	isNew, err := r.book.store.SaveGroupIncoming(ctx, m)
	if err != nil {
		return fmt.Errorf("store group message %s from %s: %w", w.id, from.Name(), err)
	}
	if isNew {
		r.book.markUnread(w.group)
		r.book.events.Publish(ports.GroupMessageEvent{Message: m})
	}
	r.book.write(ctx, from.Name(), ports.Envelope{Kind: ports.KindGroupAck, Group: groupRefWire{group: w.group, id: w.id}.encode()})
	return nil
}
