package app

import (
	"log/slog"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// refused takes a peer's KindRefused answer to one of our messages: the
// message stays in the outbox (it was not stored there), and the peer's
// flusher writes nothing to it until retryAfter has passed, then writes
// the outbox again in order.
func (s *SendMessage) refused(from domain.Username, id domain.MessageID, why ports.RefusalReason, retryAfter time.Duration) {
	retryAfter = min(max(retryAfter, minRetryAfter), ports.MaxRetryAfter)
	s.mu.Lock()
	a, ok := s.awaiting[id]
	if !ok || !a.peer.Equal(from) {
		s.mu.Unlock()
		return
	}
	delete(s.awaiting, id) // written again after the pause
	started := false
	if q, ok := s.queues[from.Key()]; ok {
		now := time.Now()
		started = !q.pausedUntil.After(now)
		if until := now.Add(retryAfter); until.After(q.pausedUntil) {
			q.pausedUntil = until
		}
		q.full, q.fresh = true, nil
	}
	s.mu.Unlock()
	if started {
		s.events.Publish(ports.RefusedEvent{Peer: from, Reason: why, RetryAfter: retryAfter})
	}
	slog.Debug("peer refused a message: retrying later", "peer", from.String(), "id", id.String(),
		"reason", why.String(), "retry_after", retryAfter)
}

// pausedFor is how long q's peer asked us not to write (0: not paused).
func (s *SendMessage) pausedFor(q *outboxQueue) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(0, time.Until(q.pausedUntil))
}
