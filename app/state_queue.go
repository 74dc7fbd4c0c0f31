package app

import (
	"time"

	"github.com/chatx/chatx/domain"
)

// stateQueue holds the state changes of our messages waiting for the
// applier (SendMessage.applyStates): one entry per message, the furthest
// state asked for. A change due now (delivered, read) goes to ready, in
// the order first asked; a "sent" change, due a fixed while after it is
// asked, goes to waiting, which is therefore in due order. A take looks
// only at ready and the due head of waiting, so the "sent" changes that
// wait for an acknowledgement to replace them cost nothing per wake.
// Not safe for concurrent use: SendMessage holds its mu.
type stateQueue struct {
	// at locates each message's entry: i ≥ 0 is ready[i]; i < 0 is
	// waiting[^i - waitBase] (waiting positions count from the queue's
	// start, so dropping its head moves none).
	at       map[domain.MessageID]int
	ready    []stateChange
	waiting  []stateChange
	waitBase int // the position of waiting[0]
}

func newStateQueue() stateQueue {
	return stateQueue{at: make(map[domain.MessageID]int)}
}

// get returns the queued change of id.
func (q *stateQueue) get(id domain.MessageID) (stateChange, bool) {
	i, ok := q.at[id]
	switch {
	case !ok:
		return stateChange{}, false
	case i >= 0:
		return q.ready[i], true
	default:
		return q.waiting[^i-q.waitBase], true
	}
}

// put queues c, or moves the queued change of its message to c's state
// when that is further along (and to c's due time when sooner).
func (q *stateQueue) put(c stateChange) {
	i, ok := q.at[c.id]
	if !ok {
		q.push(c)
		return
	}
	old, _ := q.get(c.id)
	if stateRank(c.state) <= stateRank(old.state) {
		return
	}
	old.state = c.state
	if c.due.Before(old.due) {
		old.due = c.due
	}
	switch {
	case i >= 0:
		q.ready[i] = old
	case !old.due.Before(q.waiting[^i-q.waitBase].due):
		q.waiting[^i-q.waitBase] = old
	default:
		// Due sooner than its place in waiting: it moves to ready and its
		// waiting entry is left behind, skipped when it comes due.
		q.waiting[^i-q.waitBase].gone = true
		q.push(old)
	}
}

// push adds a change of a message not queued. A "sent" change asked out
// of due order (its caller read the clock before another that took
// SendMessage.mu first) waits as long as the one before it, which keeps
// waiting in due order: it is late by that skew, microseconds.
func (q *stateQueue) push(c stateChange) {
	if c.state == domain.MessageSent {
		n := len(q.waiting)
		if n > 0 && c.due.Before(q.waiting[n-1].due) {
			c.due = q.waiting[n-1].due
		}
		q.at[c.id] = ^(q.waitBase + n)
		q.waiting = append(q.waiting, c)
		return
	}
	q.at[c.id] = len(q.ready)
	q.ready = append(q.ready, c)
}

// take removes and returns up to max changes that are due at now (all:
// whether due or not) and whose message is not busy, the oldest first.
// It also returns when the next change left waiting is due (zero: none).
// A change of ready is taken whether due or not: only "sent" ones have a
// later due time, and they all wait in waiting (see push).
func (q *stateQueue) take(now time.Time, all bool, max int, busy func(domain.MessageID) bool) ([]stateChange, time.Time) {
	// Most "sent" changes are overtaken by their acknowledgement and left
	// behind gone: those at the head are dropped due or not, so each is
	// looked at once.
	head := 0
	for ; head < len(q.waiting); head++ {
		c := q.waiting[head]
		if c.gone {
			continue
		}
		if !all && c.due.After(now) {
			break
		}
		q.at[c.id] = len(q.ready)
		q.ready = append(q.ready, c)
	}
	if head > 0 {
		clear(q.waiting[:head])
		q.waiting = q.waiting[head:]
		q.waitBase += head
		if len(q.waiting) == 0 {
			q.waiting, q.waitBase = nil, 0 // let a burst's backing array go
		}
	}
	var batch []stateChange
	kept := q.ready[:0]
	for i, c := range q.ready {
		if len(batch) < max && !busy(c.id) {
			batch = append(batch, c)
			delete(q.at, c.id)
			continue
		}
		if len(kept) != i {
			q.at[c.id] = len(kept) // moved down past the ones taken
		}
		kept = append(kept, c)
	}
	clear(q.ready[len(kept):])
	q.ready = kept
	if len(kept) == 0 && cap(kept) > max {
		q.ready = nil
	}
	var next time.Time
	if len(q.waiting) > 0 {
		next = q.waiting[0].due // not gone: the loop above stopped at it
	}
	return batch, next
}
