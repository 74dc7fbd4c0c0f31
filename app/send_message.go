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

// maxAwaitingAcks bounds the IDs remembered as sent and not yet acknowledged
// (per client), and recentAcked the delivered IDs kept for read receipts.
const (
	maxAwaitingAcks = 1 << 20
	recentAcked     = 4096
)

// SendMessage is "send this text to that person": the message is stored in
// the outbox before it is reported, then written to the peer's link and
// written again, with backoff, until the peer acknowledges it. When the peer
// comes online its outbox is flushed in order.
type SendMessage struct {
	me      domain.LocalIdentity
	link    ports.MessageLink
	store   ports.MessageStore
	verify  *VerifyContact
	clock   ports.Clock
	events  ports.EventSink
	backoff Backoff

	stampMu sync.Mutex
	last    time.Time // SentAt of our newest message: stamps strictly increase

	mu       sync.Mutex
	runCtx   context.Context // set by Run; nil before and after
	wg       sync.WaitGroup
	queues   map[string]*outboxQueue // by peer name key
	awaiting map[domain.MessageID]awaitingAck
	acked    []ackedID // ring of recently acknowledged IDs, for read receipts
	ackedPos int
}

type awaitingAck struct {
	peer domain.Username
	at   time.Time // when it was last written to the link
}

type ackedID struct {
	id   domain.MessageID
	peer domain.Username
}

// outboxQueue is the flusher of one peer's outbox.
type outboxQueue struct {
	name    domain.Username
	running bool
	nudge   chan struct{}
	acks    int // acknowledgements since the flusher last looked
}

// SendMessageInput is what the user typed and to whom.
type SendMessageInput struct {
	To   domain.Username
	Text string
}

// NewSendMessage builds the use-case.
func NewSendMessage(me domain.LocalIdentity, link ports.MessageLink, store ports.MessageStore, verify *VerifyContact, clock ports.Clock, events ports.EventSink, backoff Backoff) (*SendMessage, error) {
	switch {
	case me.IsZero():
		return nil, errNilPort("identity")
	case link == nil:
		return nil, errNilPort("message link")
	case store == nil:
		return nil, errNilPort("message store")
	case verify == nil:
		return nil, errNilPort("verify use-case")
	case clock == nil:
		return nil, errNilPort("clock")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	return &SendMessage{me: me, link: link, store: store, verify: verify, clock: clock, events: events,
		backoff: backoff.orDefault(), queues: make(map[string]*outboxQueue),
		awaiting: make(map[domain.MessageID]awaitingAck), acked: make([]ackedID, recentAcked)}, nil
}

// stamp returns a send time later than every one before it.
func (s *SendMessage) stamp() time.Time {
	s.stampMu.Lock()
	defer s.stampMu.Unlock()
	now := s.clock.Now().UTC().Truncate(time.Microsecond)
	if !now.After(s.last) {
		now = s.last.Add(time.Microsecond)
	}
	s.last = now
	return now
}

// Handle stores the message in the outbox, reports it and starts delivering
// it. *domain.KeyChangedError: the peer's key changed and sending is blocked;
// domain.ErrUnknownPeer: nobody has that name.
func (s *SendMessage) Handle(ctx context.Context, in SendMessageInput) (domain.Message, error) {
	if err := domain.ValidateBody(in.Text); err != nil {
		return domain.Message{}, err
	}
	if err := s.verify.Recipient(ctx, in.To); err != nil {
		return domain.Message{}, err
	}
	m, err := domain.NewOutgoingMessage(s.me.Name(), in.To, in.Text, s.stamp())
	if err != nil {
		return domain.Message{}, err
	}
	if err := s.store.SaveOutgoing(ctx, m); err != nil {
		return domain.Message{}, fmt.Errorf("store message to %s: %w", in.To, err)
	}
	s.events.Publish(ports.MessageEvent{Message: m})
	s.Flush(in.To)
	return m, nil
}

// Run makes Flush deliver: it starts a flusher for every peer with messages
// in the outbox, and stops every flusher when ctx is done, returning after
// they all stopped.
func (s *SendMessage) Run(ctx context.Context) {
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	peers, err := s.store.OutboxPeers(ctx)
	if err != nil {
		slog.Error("list outbox", "err", err)
	}
	for _, p := range peers {
		s.Flush(p)
	}
	<-ctx.Done()
	s.mu.Lock()
	s.runCtx = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// Flush makes the flusher of peer look at its outbox now (a new message,
// the peer came online, a key change was accepted). Before Run it does
// nothing: Run flushes every outbox when it starts.
func (s *SendMessage) Flush(peer domain.Username) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runCtx == nil {
		return
	}
	q, ok := s.queues[peer.Key()]
	if !ok {
		q = &outboxQueue{name: peer, nudge: make(chan struct{}, 1)}
		s.queues[peer.Key()] = q
	}
	select {
	case q.nudge <- struct{}{}:
	default:
	}
	if !q.running {
		q.running = true
		s.wg.Add(1)
		go s.flush(s.runCtx, q)
	}
}

// flush delivers one peer's outbox until it is empty or ctx is done.
func (s *SendMessage) flush(ctx context.Context, q *outboxQueue) {
	defer s.wg.Done()
	retry := s.backoff.Min
	for {
		select {
		case <-q.nudge:
			retry = s.backoff.Min
		default:
		}
		if ctx.Err() != nil {
			s.stopQueue(q)
			return
		}
		pending, err := s.store.Outbox(ctx, q.name)
		if err != nil {
			slog.Error("read outbox", "peer", q.name.String(), "err", err)
		} else if len(pending) == 0 {
			if s.stopQueueIfIdle(q) {
				return
			}
			continue
		}
		blocked := false
		if err == nil {
			blocked = s.writeOutbox(ctx, q, pending, retry)
		}
		var timer <-chan time.Time
		var t *time.Timer
		if !blocked { // a blocked peer waits for the user, not for a timer
			t = time.NewTimer(jitter(retry))
			timer = t.C
		}
		select {
		case <-ctx.Done():
		case <-q.nudge:
			retry = s.backoff.Min
		case <-timer:
			s.mu.Lock()
			acks := q.acks
			q.acks = 0
			s.mu.Unlock()
			if acks > 0 {
				retry = s.backoff.Min
			} else {
				retry = s.backoff.next(retry)
			}
		}
		if t != nil {
			t.Stop()
		}
	}
}

// writeOutbox writes every message of pending not written in the last
// retry to the peer, oldest first; it stops at the first failure. It
// reports whether the peer is blocked by a key change.
func (s *SendMessage) writeOutbox(ctx context.Context, q *outboxQueue, pending []domain.Message, retry time.Duration) (blocked bool) {
	peer, err := s.verify.PeerForSend(ctx, q.name)
	var kc *domain.KeyChangedError
	switch {
	case errors.As(err, &kc):
		return true
	case err != nil:
		slog.Debug("outbox waits", "peer", q.name.String(), "err", err)
		return false
	}
	for _, m := range pending {
		now := time.Now()
		s.mu.Lock()
		a, ok := s.awaiting[m.ID()]
		if ok && now.Sub(a.at) < retry {
			s.mu.Unlock()
			continue
		}
		if !ok && len(s.awaiting) >= maxAwaitingAcks {
			s.mu.Unlock()
			return false
		}
		s.awaiting[m.ID()] = awaitingAck{peer: q.name, at: now}
		s.mu.Unlock()
		env := ports.Envelope{Kind: ports.KindChat, MessageID: m.ID(), SentAt: m.SentAt(), Body: m.Body()}
		if err := sendEnvelope(ctx, s.link, peer, env); err != nil {
			if errors.As(err, &kc) {
				s.verify.recordKeyChange(ctx, q.name)
				return true
			}
			slog.Debug("send message", "peer", q.name.String(), "id", m.ID().String(), "err", err)
			return false
		}
		if m.State() == domain.MessageQueued {
			s.setState(ctx, m.ID(), q.name, domain.MessageSent)
		}
	}
	return false
}

func (s *SendMessage) setState(ctx context.Context, id domain.MessageID, peer domain.Username, st domain.MessageState) {
	m, err := s.store.SetState(ctx, id, st)
	if errors.Is(err, domain.ErrInvalidTransition) {
		return // an acknowledgement overtook us, or a repeat
	}
	if err != nil {
		slog.Error("set message state", "peer", peer.String(), "id", id.String(), "state", st.String(), "err", err)
		return
	}
	s.events.Publish(ports.MessageStateEvent{ID: id, Peer: m.To(), State: m.State()})
}

// stopQueue marks q's flusher stopped.
func (s *SendMessage) stopQueue(q *outboxQueue) {
	s.mu.Lock()
	q.running = false
	s.mu.Unlock()
}

// stopQueueIfIdle stops q's flusher unless a nudge came in meanwhile.
func (s *SendMessage) stopQueueIfIdle(q *outboxQueue) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-q.nudge:
		// a message arrived while we looked: go round again
		q.nudge <- struct{}{}
		return false
	default:
	}
	q.running = false
	return true
}

// Delivered records the peer's acknowledgement of one of our messages. It
// is ignored unless we wrote that message to that peer.
func (s *SendMessage) Delivered(ctx context.Context, from domain.Username, id domain.MessageID) {
	s.mu.Lock()
	a, ok := s.awaiting[id]
	if ok && a.peer.Equal(from) {
		delete(s.awaiting, id)
		s.acked[s.ackedPos] = ackedID{id: id, peer: from}
		s.ackedPos = (s.ackedPos + 1) % len(s.acked)
		if q, ok := s.queues[from.Key()]; ok {
			q.acks++
		}
	}
	s.mu.Unlock()
	if !ok || !a.peer.Equal(from) {
		slog.Debug("acknowledgement for no message we sent", "peer", from.String(), "id", id.String())
		return
	}
	s.setState(ctx, id, from, domain.MessageDelivered)
}

// Read records the peer's read receipt for a message it acknowledged.
func (s *SendMessage) Read(ctx context.Context, from domain.Username, id domain.MessageID) {
	s.mu.Lock()
	known := false
	for _, a := range s.acked {
		if a.id == id && a.peer.Equal(from) {
			known = true
			break
		}
	}
	if a, ok := s.awaiting[id]; ok && a.peer.Equal(from) {
		known = true
	}
	s.mu.Unlock()
	if !known {
		return
	}
	s.setState(ctx, id, from, domain.MessageRead)
}
