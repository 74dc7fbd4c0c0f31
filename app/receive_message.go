package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Bounds of what a peer can make us hold.
const (
	ackQueueSize     = 4096 // acknowledgements waiting to be written
	maxPipelined     = 1024 // received chats being stored at once (all peers)
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
	mail   *mailDelivery // nil: acknowledgements to offline peers wait for a repeat

	acks chan pendingAck

	mu     sync.Mutex
	unread map[string]*unreadList // by peer name key

	// The pipeline of received chats (see Pipeline): while Run runs, chats
	// are stored concurrently and reported and acknowledged in the order
	// they arrived from each peer.
	pipeMu    sync.Mutex
	pipelined bool                   // Run runs: Pipeline stores in the background
	inboxes   map[string]*inboxQueue // by peer name key; an entry while it holds chats
	saving    sync.WaitGroup         // background stores, waited for by Run
	slots     chan struct{}          // one per chat in an inbox queue (maxPipelined)
}

// inboxQueue is the chats of one peer being stored, in arrival order.
type inboxQueue struct {
	key   string
	items []*incomingChat
}

// incomingChat is one received chat on its way to the store.
type incomingChat struct {
	m     domain.Message
	done  bool
	isNew bool
	err   error
}

type pendingAck struct {
	to   domain.Username
	kind ports.EnvelopeKind
	id   domain.MessageID
	// KindRefused (contacts.go): why, and when to write again.
	refusal    ports.RefusalReason
	retryAfter time.Duration
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
		acks: make(chan pendingAck, ackQueueSize), unread: make(map[string]*unreadList),
		inboxes: make(map[string]*inboxQueue), slots: make(chan struct{}, maxPipelined)}, nil
}

// errNotStored marks a failure to store what a peer sent (a disk error):
// the envelope was not taken, and whoever holds it must keep it (the
// mailbox leaves the letter at the registry).
var errNotStored = errors.New("not stored")

// Handle takes one chat, delivered, read or typing envelope. A chat is
// stored, reported and its acknowledgement queued, and an acknowledgement
// or read receipt is in the store, when Handle returns.
func (r *ReceiveMessage) Handle(ctx context.Context, in ReceiveMessageInput) error {
	return r.handle(ctx, in, false)
}

// Pipeline is Handle for a link that delivers a peer's envelopes one after
// the other: while Run runs it returns before the work is durable, so the
// store can commit many at once. A chat is stored in the background and
// reported and acknowledged only once it and every chat that peer sent
// before it are stored (a chat the store refused is neither reported nor
// acknowledged: the sender writes it again); an acknowledgement or read
// receipt is applied by SendMessage's applier. At most maxPipelined chats
// are in the pipeline at once: beyond, Pipeline waits. Before and after Run
// it is Handle. An error is about the envelope (invalid), not the store.
func (r *ReceiveMessage) Pipeline(ctx context.Context, in ReceiveMessageInput) error {
	return r.handle(ctx, in, true)
}

func (r *ReceiveMessage) handle(ctx context.Context, in ReceiveMessageInput, pipeline bool) error {
	from := in.From.Name()
	env := in.Envelope
	switch env.Kind {
	case ports.KindChat:
		m, err := domain.NewIncomingMessage(env.MessageID, from, r.me.Name(), r.sentAt(env.SentAt), env.Body)
		if err != nil {
			return fmt.Errorf("message %s from %s: %w", env.MessageID, from, err)
		}
		traceStage(StageReceived, m.ID())
		if pipeline {
			return r.pipeChat(ctx, from, m)
		}
		isNew, err := r.store.SaveIncoming(ctx, m)
		if err != nil {
			return fmt.Errorf("store message %s from %s: %w: %w", env.MessageID, from, errNotStored, err)
		}
		r.stored(from, m, isNew)
	case ports.KindDelivered:
		r.send.delivered(ctx, from, env.MessageID, pipeline)
	case ports.KindRead:
		r.send.read(ctx, from, env.MessageID, pipeline)
	case ports.KindTyping:
		r.events.Publish(ports.TypingEvent{From: from})
	default:
		return fmt.Errorf("envelope kind %d from %s is not a message", env.Kind, from)
	}
	return nil
}

// stored reports a stored chat (if it is new) and queues its acknowledgement.
func (r *ReceiveMessage) stored(from domain.Username, m domain.Message, isNew bool) {
	if isNew {
		r.markUnread(from, m.ID())
		r.events.Publish(ports.MessageEvent{Message: m})
	}
	traceStage(StageAckQueued, m.ID())
	r.queueAck(pendingAck{to: from, kind: ports.KindDelivered, id: m.ID()})
}

// pipeChat puts m at the end of its sender's inbox queue and stores it, in
// the background while Run runs, here otherwise.
func (r *ReceiveMessage) pipeChat(ctx context.Context, from domain.Username, m domain.Message) error {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("message %s from %s: %w", m.ID(), from, ctx.Err())
	}
	c := &incomingChat{m: m}
	r.pipeMu.Lock()
	q, ok := r.inboxes[from.Key()]
	if !ok {
		q = &inboxQueue{key: from.Key()}
		r.inboxes[from.Key()] = q
	}
	q.items = append(q.items, c)
	background := r.pipelined
	if background {
		r.saving.Add(1)
	}
	r.pipeMu.Unlock()
	if !background {
		r.saveChat(ctx, from, q, c)
		return nil
	}
	go func() {
		defer r.saving.Done()
		r.saveChat(ctx, from, q, c)
	}()
	return nil
}

// saveChat stores c, then reports and acknowledges every chat at the head
// of q whose store has finished, in order.
func (r *ReceiveMessage) saveChat(ctx context.Context, from domain.Username, q *inboxQueue, c *incomingChat) {
	isNew, err := r.store.SaveIncoming(ctx, c.m)
	if err == nil {
		traceStage(StageStored, c.m.ID())
	}
	r.pipeMu.Lock()
	defer r.pipeMu.Unlock()
	c.done, c.isNew, c.err = true, isNew, err
	n := 0
	for n < len(q.items) && q.items[n].done {
		h := q.items[n]
		switch {
		case h.err != nil && ctx.Err() != nil:
			slog.Debug("received message not stored: stopping", "peer", from.String(), "id", h.m.ID().String())
		case h.err != nil:
			slog.Warn("received message not stored", "peer", from.String(), "id", h.m.ID().String(), "err", h.err)
		default:
			r.stored(from, h.m, h.isNew)
		}
		<-r.slots
		n++
	}
	rest := copy(q.items, q.items[n:])
	clear(q.items[rest:])
	q.items = q.items[:rest]
	if rest == 0 {
		delete(r.inboxes, q.key)
	}
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

// Pipelining reports whether Run runs, so that Pipeline stores chats in
// the background.
func (r *ReceiveMessage) Pipelining() bool {
	r.pipeMu.Lock()
	defer r.pipeMu.Unlock()
	return r.pipelined
}

// Run writes queued acknowledgements until ctx is done; while it runs,
// Pipeline stores chats in the background. It returns after every
// background store has finished.
func (r *ReceiveMessage) Run(ctx context.Context) {
	r.pipeMu.Lock()
	r.pipelined = true
	r.pipeMu.Unlock()
	defer func() {
		r.pipeMu.Lock()
		r.pipelined = false
		r.pipeMu.Unlock()
		r.saving.Wait()
	}()
	var batch []pendingAck
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-r.acks:
			batch = append(batch[:0], a)
		more:
			for len(batch) < ackQueueSize {
				select {
				case a := <-r.acks:
					batch = append(batch, a)
				default:
					break more
				}
			}
			r.writeAcks(ctx, batch)
		}
	}
}

// writeAcks writes a batch of queued acknowledgements and receipts in
// order, resolving each peer once for the batch (through SendMessage's
// peer cache: PeerForSend may wait for the trust store, and doing it per
// acknowledgement would allow one per commit).
func (r *ReceiveMessage) writeAcks(ctx context.Context, batch []pendingAck) {
	type resolved struct {
		peer domain.Peer
		err  error
	}
	peers := make(map[string]resolved)
	for _, a := range batch {
		p, ok := peers[a.to.Key()]
		if !ok {
			p.peer, p.err = r.send.peerForSend(ctx, a.to)
			peers[a.to.Key()] = p
		}
		if p.err != nil {
			slog.Debug("acknowledgement not sent", "peer", a.to.String(), "err", p.err)
			if r.mail != nil && errors.Is(p.err, domain.ErrPeerOffline) {
				r.mail.parkAck(ctx, a.to, a.kind, a.id) // the sender reads it when it is back
			}
			continue
		}
		env := ports.Envelope{Kind: a.kind, MessageID: a.id, Refusal: a.refusal, RetryAfter: a.retryAfter}
		if err := sendEnvelope(ctx, r.link, p.peer, env); err != nil {
			slog.Debug("acknowledgement not sent", "peer", a.to.String(), "err", err)
			r.send.forgetPeer(a.to)
		} else if a.kind == ports.KindDelivered {
			traceStage(StageAckWritten, a.id)
		}
	}
}

// sentAt is the time a chat is filed under: the sender's clock, but never
// in our future, so a peer (or a clock running ahead) cannot pin its
// messages below every later one of the conversation.
func (r *ReceiveMessage) sentAt(claimed time.Time) time.Time {
	now := r.send.clock.Now()
	if claimed.IsZero() || claimed.After(now) {
		return now
	}
	return claimed
}
