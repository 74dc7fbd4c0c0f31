package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Bounds of what a peer can make us hold.
const (
	ackQueueSize     = 4096 // acknowledgements waiting to be written
	maxUnreadPerPeer = 1024 // unread message IDs remembered per peer for read receipts
	maxUnreadPeers   = 4096 // peers with unread counts (beyond, new peers are not counted)
)

// ReceiveMessage is "a peer wrote to me": it stores the message once
// (deduplicated by ID), tells the user, and acknowledges it — every time,
// because a repeat means our earlier acknowledgement was lost. It also takes
// the peer's acknowledgements, read receipts and typing notices.
type ReceiveMessage struct {
	me     domain.LocalIdentity
	link   ports.MessageLink
	store  ports.MessageStore
	verify *VerifyContact
	send   *SendMessage
	events ports.EventSink

	acks chan pendingAck

	mu     sync.Mutex
	unread map[string]*unreadList // by peer name key
}

type pendingAck struct {
	to   domain.Username
	kind ports.EnvelopeKind
	id   domain.MessageID
}

type unreadList struct {
	count int
	ids   []domain.MessageID // the newest maxUnreadPerPeer
}

// ReceiveMessageInput is one envelope from an authenticated peer.
type ReceiveMessageInput struct {
	From     domain.Identity
	Envelope ports.Envelope
}

// NewReceiveMessage builds the use-case.
func NewReceiveMessage(me domain.LocalIdentity, link ports.MessageLink, store ports.MessageStore, verify *VerifyContact, send *SendMessage, events ports.EventSink) (*ReceiveMessage, error) {
	switch {
	case me.IsZero():
		return nil, errNilPort("identity")
	case link == nil:
		return nil, errNilPort("message link")
	case store == nil:
		return nil, errNilPort("message store")
	case verify == nil:
		return nil, errNilPort("verify use-case")
	case send == nil:
		return nil, errNilPort("send use-case")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	return &ReceiveMessage{me: me, link: link, store: store, verify: verify, send: send, events: events,
		acks: make(chan pendingAck, ackQueueSize), unread: make(map[string]*unreadList)}, nil
}

// Handle takes one chat, delivered, read or typing envelope.
func (r *ReceiveMessage) Handle(ctx context.Context, in ReceiveMessageInput) error {
	from := in.From.Name()
	env := in.Envelope
	switch env.Kind {
	case ports.KindChat:
		m, err := domain.NewIncomingMessage(env.MessageID, from, r.me.Name(), env.SentAt, env.Body)
		if err != nil {
			return fmt.Errorf("message %s from %s: %w", env.MessageID, from, err)
		}
		isNew, err := r.store.SaveIncoming(ctx, m)
		if err != nil {
			return fmt.Errorf("store message %s from %s: %w", env.MessageID, from, err)
		}
		if isNew {
			r.markUnread(from, m.ID())
			r.events.Publish(ports.MessageEvent{Message: m})
		}
		r.queueAck(pendingAck{to: from, kind: ports.KindDelivered, id: m.ID()})
	case ports.KindDelivered:
		r.send.Delivered(ctx, from, env.MessageID)
	case ports.KindRead:
		r.send.Read(ctx, from, env.MessageID)
	case ports.KindTyping:
		r.events.Publish(ports.TypingEvent{From: from})
	default:
		return fmt.Errorf("envelope kind %d from %s is not a message", env.Kind, from)
	}
	return nil
}

func (r *ReceiveMessage) markUnread(from domain.Username, id domain.MessageID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.unread[from.Key()]
	if !ok {
		if len(r.unread) >= maxUnreadPeers {
			return
		}
		u = &unreadList{}
		r.unread[from.Key()] = u
	}
	u.count++
	if len(u.ids) >= maxUnreadPerPeer {
		u.ids = append(u.ids[:0], u.ids[1:]...)
	}
	u.ids = append(u.ids, id)
}

// Unread is the number of messages from peer received since MarkRead.
func (r *ReceiveMessage) Unread(peer domain.Username) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok := r.unread[peer.Key()]; ok {
		return u.count
	}
	return 0
}

// MarkRead clears the unread count of peer and queues read receipts for
// the messages it covered.
func (r *ReceiveMessage) MarkRead(peer domain.Username) {
	r.mu.Lock()
	u, ok := r.unread[peer.Key()]
	delete(r.unread, peer.Key())
	r.mu.Unlock()
	if !ok {
		return
	}
	for _, id := range u.ids {
		r.queueAck(pendingAck{to: peer, kind: ports.KindRead, id: id})
	}
}

// queueAck queues without blocking the link; when the queue is full the
// acknowledgement is dropped and the sender's retry earns another.
func (r *ReceiveMessage) queueAck(a pendingAck) {
	select {
	case r.acks <- a:
	default:
		slog.Warn("acknowledgement queue full: dropped", "peer", a.to.String())
	}
}

// Run writes queued acknowledgements until ctx is done.
func (r *ReceiveMessage) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-r.acks:
			peer, err := r.verify.PeerForSend(ctx, a.to)
			if err != nil {
				slog.Debug("acknowledgement not sent", "peer", a.to.String(), "err", err)
				continue
			}
			if err := sendEnvelope(ctx, r.link, peer, ports.Envelope{Kind: a.kind, MessageID: a.id}); err != nil {
				slog.Debug("acknowledgement not sent", "peer", a.to.String(), "err", err)
			}
		}
	}
}
