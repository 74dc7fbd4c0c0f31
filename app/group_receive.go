package app

import (
	"context"
	"fmt"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// ReceiveGroup takes the group envelopes of authenticated peers: a
// member's message is stored once (by group and ID) and acknowledged, a
// log is merged, an ask is answered. A message from someone who is not a
// member, or at an epoch our log does not hold, is dropped unacknowledged
// — for an unknown epoch we ask the sender for its log, and the sender's
// outbox writes the message again after we have caught up.
//
// While Run runs, messages are stored in the background, concurrently (so
// the store commits many at once), and reported and acknowledged in the
// order each sender sent them, once they and every earlier one from that
// sender are stored — as ReceiveMessage.Pipeline does for chats.
type ReceiveGroup struct {
	book   *GroupBook
	fanout *PairwiseFanout

	mu      sync.Mutex
	running bool
	inboxes map[string]*groupInbox // by sender name key; an entry while it holds messages
	saving  sync.WaitGroup
	slots   chan struct{} // one per message being stored (maxPipelined)
}

// groupInbox is the messages of one sender being stored, in arrival order.
type groupInbox struct {
	items []*groupIncoming
}

type groupIncoming struct {
	m     domain.GroupMessage
	done  bool
	isNew bool
	err   error
}

// NewReceiveGroup builds the use-case.
func NewReceiveGroup(book *GroupBook, fanout *PairwiseFanout) (*ReceiveGroup, error) {
	switch {
	case book == nil:
		return nil, errNilPort("group book")
	case fanout == nil:
		return nil, errNilPort("group fan-out")
	}
	return &ReceiveGroup{book: book, fanout: fanout, inboxes: map[string]*groupInbox{}, slots: make(chan struct{}, maxPipelined)}, nil
}

// Run stores received messages in the background until ctx is done, then
// waits for the stores under way.
func (r *ReceiveGroup) Run(ctx context.Context) {
	r.mu.Lock()
	r.running = true
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	r.running = false
	r.mu.Unlock()
	r.saving.Wait()
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
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("group message %s from %s: %w", w.id, from.Name(), ctx.Err())
	}
	c := &groupIncoming{m: m}
	r.mu.Lock()
	q, ok := r.inboxes[from.Name().Key()]
	if !ok {
		q = &groupInbox{}
		r.inboxes[from.Name().Key()] = q
	}
	q.items = append(q.items, c)
	background := r.running
	if background {
		r.saving.Add(1)
	}
	r.mu.Unlock()
	if !background {
		r.save(ctx, from.Name(), q, c)
		return c.err
	}
	go func() {
		defer r.saving.Done()
		r.save(ctx, from.Name(), q, c)
	}()
	return nil
}

// save stores c, then reports and acknowledges every message at the head
// of q whose store has finished, in order. A message the store refused is
// neither reported nor acknowledged: the sender writes it again.
func (r *ReceiveGroup) save(ctx context.Context, from domain.Username, q *groupInbox, c *groupIncoming) {
	isNew, err := r.book.store.SaveGroupIncoming(ctx, c.m)
	r.mu.Lock()
	defer r.mu.Unlock()
	c.done, c.isNew = true, isNew
	if err != nil {
		c.err = fmt.Errorf("store group message %s from %s: %w", c.m.ID(), from, err)
	}
	n := 0
	for n < len(q.items) && q.items[n].done {
		h := q.items[n]
		<-r.slots
		n++
		if h.err != nil {
			continue
		}
		if h.isNew {
			r.book.markUnread(h.m.Group())
			r.book.events.Publish(ports.GroupMessageEvent{Message: h.m})
		}
		r.book.write(ctx, from, ports.Envelope{Kind: ports.KindGroupAck, Group: groupRefWire{group: h.m.Group(), id: h.m.ID()}.encode()})
	}
	clear(q.items[:n])
	q.items = q.items[n:]
	if len(q.items) == 0 && r.inboxes[from.Key()] == q {
		delete(r.inboxes, from.Key())
	}
}
