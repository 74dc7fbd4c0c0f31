package app

import (
	"context"
	"errors"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// mailAckHistory is how far back in a conversation a read receipt from
// the mailbox looks for the message it is about.
const mailAckHistory = 2048

// offline is told that the outbox of q could not be written: the peer is
// offline (err is domain.ErrPeerOffline from the directory), or writing to
// it failed (then it waits Grace before the mailbox takes over). pending
// are the messages not written, oldest first.
func (s *SendMessage) offline(ctx context.Context, q *outboxQueue, pending []domain.Message, err error, presentOnline bool) {
	if s.mail == nil || len(pending) == 0 || ctx.Err() != nil {
		return
	}
	if presentOnline && s.mail.noteUnreachable(q.name) < s.mail.opts.Grace {
		return
	}
	if !presentOnline && !errors.Is(err, domain.ErrPeerOffline) {
		return // the directory failed: not a reason to think the peer is away
	}
	s.mail.park(ctx, q.name, pending)
}

// reachedPeer clears the unreachable mark of a peer we wrote to.
func (s *SendMessage) reachedPeer(name domain.Username) {
	if s.mail != nil {
		s.mail.reached(name)
	}
}

// mailAck takes an acknowledgement or read receipt that came through our
// mailbox. It may be for a message written before a restart (so not
// awaited in memory): it counts when the message is ours to from, in the
// outbox (delivered) or recent history (read). The state is stored when
// mailAck returns (the mail is deleted after).
func (s *SendMessage) mailAck(ctx context.Context, from domain.Username, kind ports.EnvelopeKind, id domain.MessageID) error {
	s.mu.Lock()
	a, awaited := s.awaiting[id]
	s.mu.Unlock()
	if kind == ports.KindDelivered && awaited && a.peer.Equal(from) {
		s.delivered(ctx, from, id, false)
		return nil
	}
	ours, err := s.isOurs(ctx, from, id, kind == ports.KindRead)
	if err != nil || !ours {
		return err
	}
	state := domain.MessageDelivered
	if kind == ports.KindRead {
		state = domain.MessageRead
	}
	s.mu.Lock()
	delete(s.awaiting, id)
	s.mu.Unlock()
	s.setState(ctx, id, from, state)
	return nil
}

// isOurs reports whether id is a message of ours to peer: in the outbox,
// or, with inHistory, in the recent history.
func (s *SendMessage) isOurs(ctx context.Context, peer domain.Username, id domain.MessageID, inHistory bool) (bool, error) {
	out, err := s.store.Outbox(ctx, peer)
	if err != nil {
		return false, err
	}
	for _, m := range out {
		if m.ID() == id {
			return true, nil
		}
	}
	if !inHistory {
		return false, nil
	}
	hist, err := s.store.History(ctx, peer, time.Time{}, mailAckHistory)
	if err != nil {
		return false, err
	}
	for _, m := range hist {
		if m.ID() == id && m.Direction() == domain.Outgoing {
			return true, nil
		}
	}
	return false, nil
}
