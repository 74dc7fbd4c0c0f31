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
// (under s.mu, so stamp order is start order); the message is then stored.
// A message is released — its MessageEvent published, handed to its peer's
// flusher — only once it and every message started before it are stored
// (or failed), so releases happen in start order. A flusher's full round
// reads the outbox from the store, where a message can be stored and not
// yet released: cutUnreleased leaves out of such a round every message
// still in the intake and every one released after the round began (those
// are written by the next round, from the fresh list, in order), so no
// message reaches the peer before one started earlier.

// PendingSend is a message that has its place in the order of our messages
// and is being stored. Wait returns once it is stored and reported.
type PendingSend struct {
	m        domain.Message
	done     bool // stored or failed (under SendMessage.mu)
	err      error
	released chan struct{} // closed once it is reported (or failed)
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
	return p, nil
}

// store1 stores p's message and releases what it can.
func (s *SendMessage) store1(ctx context.Context, p *PendingSend) {
	err := s.store.SaveOutgoing(ctx, p.m)
	s.mu.Lock()
	defer s.mu.Unlock()
	p.done, p.err = true, err
	n := 0
	for n < len(s.intake) && s.intake[n].done {
		h := s.intake[n]
		if h.err == nil {
			s.events.Publish(ports.MessageEvent{Message: h.m})
			s.nudgeLocked(h.m.To(), &h.m)
		}
		close(h.released)
		n++
	}
	rest := copy(s.intake, s.intake[n:])
	clear(s.intake[rest:])
	s.intake = s.intake[:rest]
}

// cutUnreleased leaves out of a full round's outbox read for q the
// messages still in the intake and those released since the round began
// (in q.fresh): they are written by a later round, in order.
func (s *SendMessage) cutUnreleased(q *outboxQueue, pending []domain.Message) []domain.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.intake) == 0 && len(q.fresh) == 0 {
		return pending
	}
	late := make(map[domain.MessageID]struct{}, len(s.intake)+len(q.fresh))
	for _, p := range s.intake {
		late[p.m.ID()] = struct{}{}
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
