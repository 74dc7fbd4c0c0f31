package app

import (
	"context"
	"fmt"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// The intake of SendMessage: sends that overlap (a script writing sends
// without waiting for each answer, several goroutines of a bot) are stored
// concurrently, so the store commits them together, and yet reported and
// handed to the flushers in the order they were started.
//
// Start gives a message its stamp and its place at the end of s.intake
// (under s.mu, so stamp order is start order); the message is then stored
// with MessageStore.SaveOutgoingStaged. Two steps follow, each in start
// order:
//
//   - handed: once the message is committed (not yet durable: the store
//     flushes its log meanwhile) and every message started before it is
//     committed or failed, it goes to its peer's flusher, so the peer
//     stores it while we flush (ports.OutboxStaging says why that is safe);
//   - released: once it is durable, and every message before it is
//     released or failed, its MessageEvent is published and Handle (Wait)
//     returns. A state change the peer reports for a message not yet
//     released waits until it is (takeStates), so "delivered" never comes
//     before the message itself.
//
// A flusher's full round reads the outbox from the store, where a message
// can be stored and not yet handed: cutUnreleased leaves out of such a
// round every message in the intake not yet handed and every one handed
// after the round began (those are written by the next round, from the
// fresh list, in order), so no message reaches the peer before one
// started earlier.

// PendingSend is a message that has its place in the order of our messages
// and is being stored. Wait returns once it is stored and reported.
type PendingSend struct {
	m         domain.Message
	committed bool // stored, maybe not durable yet (under SendMessage.mu)
	handed    bool // given to the flusher
	done      bool // durable or failed
	err       error
	released  chan struct{} // closed once it is reported (or failed)
}

// Wait returns the message once it is durable in the outbox and reported,
// or why it is not stored.
func (p *PendingSend) Wait() (domain.Message, error) {
	<-p.released
	if p.err != nil {
		return domain.Message{}, fmt.Errorf("store message to %s: %w", p.m.To(), p.err)
	}
	return p.m, nil
}

// Start is Handle in two steps: it checks the message and its recipient
// and gives it its place in the order of our messages before it returns;
// the store runs in the background and Wait returns Handle's result.
// Messages started one after another are reported and written to their
// peer in that order, however their store writes finish.
func (s *SendMessage) Start(ctx context.Context, in SendMessageInput) (*PendingSend, error) {
	p, err := s.begin(ctx, in)
	if err != nil {
		return nil, err
	}
	// Owned by p: it ends when the store answers (ctx or the store's Close
	// bound it), and Wait waits for it.
	go s.store1(ctx, p)
	return p, nil
}

// begin validates in, checks the recipient, and stamps the message and
// appends it to the intake in one step.
func (s *SendMessage) begin(ctx context.Context, in SendMessageInput) (*PendingSend, error) {
	if err := domain.ValidateBody(in.Text); err != nil {
		return nil, err
	}
	if err := s.recipient(ctx, in.To); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := domain.NewOutgoingMessage(s.me.Name(), in.To, in.Text, s.stamp())
	if err != nil {
		return nil, err
	}
	p := &PendingSend{m: m, released: make(chan struct{})}
	s.intake = append(s.intake, p)
	s.intakeIDs[m.ID()] = struct{}{}
	return p, nil
}

// store1 stores p's message, handing and releasing what it can.
func (s *SendMessage) store1(ctx context.Context, p *PendingSend) {
	err := s.store.SaveOutgoingStaged(ctx, p.m, func() { s.committed(p) })
	if err == nil {
		traceStage(StageOutboxDurable, p.m.ID())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p.done, p.err = true, err
	s.handLocked()
	n := 0
	for n < len(s.intake) && s.intake[n].done {
		h := s.intake[n]
		if h.err == nil {
			s.events.Publish(ports.MessageEvent{Message: h.m})
			if !h.handed { // a store that did not call committed
				h.handed = true
				s.nudgeLocked(h.m.To(), &h.m)
			}
		}
		delete(s.intakeIDs, h.m.ID())
		s.showDeliveredLocked(h.m.ID()) // acknowledged before it was durable here
		close(h.released)
		n++
	}
	rest := copy(s.intake, s.intake[n:])
	clear(s.intake[rest:])
	s.intake = s.intake[:rest]
	if n > 0 {
		s.wakeApplier() // state changes may wait for these
	}
}

// committed is called by the store once p's message is committed.
func (s *SendMessage) committed(p *PendingSend) {
	traceStage(StageOutboxCommitted, p.m.ID())
	s.mu.Lock()
	defer s.mu.Unlock()
	p.committed = true
	s.handLocked()
}

// handLocked hands to their flushers, in start order, the committed
// messages at the head of the intake (skipping failed ones).
func (s *SendMessage) handLocked() {
	for _, h := range s.intake {
		switch {
		case h.handed:
		case h.committed && (h.err == nil || !h.done):
			h.handed = true
			s.nudgeLocked(h.m.To(), &h.m)
		case h.done: // failed before it was committed
		default:
			return
		}
	}
}

// cutUnreleased leaves out of a full round's outbox read for q the
// messages in the intake not yet handed and those handed since the round
// began (in q.fresh): they are written by a later round, in order.
func (s *SendMessage) cutUnreleased(q *outboxQueue, pending []domain.Message) []domain.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.intake) == 0 && len(q.fresh) == 0 {
		return pending
	}
	late := make(map[domain.MessageID]struct{}, len(s.intake)+len(q.fresh))
	for _, p := range s.intake {
		if !p.handed {
			late[p.m.ID()] = struct{}{}
		}
	}
	for _, m := range q.fresh {
		late[m.ID()] = struct{}{}
	}
	kept := pending[:0]
	for _, m := range pending {
		if _, ok := late[m.ID()]; !ok {
			kept = append(kept, m)
		}
	}
	return kept
}

// recipient is VerifyContact.Recipient, reusing a success of less than
// peerCacheTTL ago (it reads the trust store twice, which at thousands of
// sends a second was a fifth of the client's CPU). A pending key change is
// checked on every send all the same.
func (s *SendMessage) recipient(ctx context.Context, name domain.Username) error {
	if err := s.verify.Blocked(ctx, name); err != nil {
		return err
	}
	s.peerMu.Lock()
	at, ok := s.recipients[name.Key()]
	s.peerMu.Unlock()
	if ok && time.Since(at) < peerCacheTTL {
		return nil
	}
	if err := s.verify.Recipient(ctx, name); err != nil {
		return err
	}
	s.peerMu.Lock()
	if len(s.recipients) >= maxCachedPeers {
		clear(s.recipients)
	}
	s.recipients[name.Key()] = time.Now()
	s.peerMu.Unlock()
	return nil
}
