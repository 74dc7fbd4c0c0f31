package app

import (
	"fmt"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
)

func TestStateQueueTakesWhatIsDueInOrderAndLetsAckedSentChangesGo(t *testing.T) {
	q := newStateQueue()
	t0 := time.Now()
	ids := make([]domain.MessageID, 6)
	for i := range ids {
		ids[i] = domain.NewMessageID()
	}
	sent := func(i int, due time.Duration) stateChange {
		return stateChange{id: ids[i], state: domain.MessageSent, due: t0.Add(due)}
	}
	q.put(sent(0, time.Second))
	q.put(sent(1, 2*time.Second))
	q.put(sent(2, 3*time.Second))
	// 1's acknowledgement overtakes its "sent": due at once.
	q.put(stateChange{id: ids[1], state: domain.MessageDelivered, due: t0})
	// A lower state never replaces a higher one.
	q.put(sent(1, 0))
	q.put(stateChange{id: ids[3], state: domain.MessageRead, due: t0})
	notBusy := func(domain.MessageID) bool { return false }
	states := func(cs []stateChange) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			for n, id := range ids {
				if id == c.id {
					out[i] = fmt.Sprintf("%d:%s", n, c.state)
				}
			}
		}
		return out
	}

	batch, next := q.take(t0, false, 10, notBusy)
	if got := states(batch); len(got) != 2 || got[0] != "1:delivered" || got[1] != "3:read" {
		t.Fatalf("due at t0: %v", got)
	}
	if !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next due %v, want t0+1s", next.Sub(t0))
	}
	if _, ok := q.get(ids[1]); ok {
		t.Fatal("a taken change is still queued")
	}
	// A busy message's change stays, and the rest behind it go.
	q.put(stateChange{id: ids[4], state: domain.MessageDelivered, due: t0})
	q.put(stateChange{id: ids[5], state: domain.MessageDelivered, due: t0})
	batch, _ = q.take(t0.Add(1500*time.Millisecond), false, 10, func(id domain.MessageID) bool { return id == ids[4] })
	if got := states(batch); len(got) != 2 || got[0] != "5:delivered" || got[1] != "0:sent" {
		t.Fatalf("at t0+1.5s with 4 busy: %v", got)
	}
	if c, ok := q.get(ids[4]); !ok || c.state != domain.MessageDelivered {
		t.Fatalf("the busy change: %+v %v", c, ok)
	}
	// max bounds a batch; all takes what is not due yet; the gone entry
	// of 1 is never returned again.
	batch, next = q.take(t0, true, 1, notBusy)
	if got := states(batch); len(got) != 1 || got[0] != "4:delivered" || !next.IsZero() {
		t.Fatalf("all, max 1: %v next %v", got, next)
	}
	batch, _ = q.take(t0, true, 10, notBusy)
	if got := states(batch); len(got) != 1 || got[0] != "2:sent" {
		t.Fatalf("all: %v", got)
	}
	if len(q.at) != 0 || len(q.ready) != 0 || len(q.waiting) != 0 {
		t.Fatalf("left: %d indexed, %d ready, %d waiting", len(q.at), len(q.ready), len(q.waiting))
	}

}

// queueState reads the clock before it takes SendMessage.mu, so two
// "sent" changes asked at once may reach the queue out of due order; the
// later one must still wait its quarter retry, not be applied at once.
func TestStateQueueKeepsASentChangeAskedOutOfDueOrderWaiting(t *testing.T) {
	q := newStateQueue()
	t0 := time.Now()
	a, b := domain.NewMessageID(), domain.NewMessageID()
	q.put(stateChange{id: a, state: domain.MessageSent, due: t0.Add(10 * time.Millisecond)})
	q.put(stateChange{id: b, state: domain.MessageSent, due: t0.Add(9 * time.Millisecond)})
	notBusy := func(domain.MessageID) bool { return false }
	batch, next := q.take(t0, false, 10, notBusy)
	if len(batch) != 0 {
		t.Fatalf("%d \"sent\" changes applied before they are due", len(batch))
	}
	if next.IsZero() || next.After(t0.Add(10*time.Millisecond)) {
		t.Fatalf("next due %v, want by t0+10ms", next.Sub(t0))
	}
	// Its acknowledgement still overtakes it.
	q.put(stateChange{id: b, state: domain.MessageDelivered, due: t0})
	batch, _ = q.take(t0, false, 10, notBusy)
	if len(batch) != 1 || batch[0].id != b || batch[0].state != domain.MessageDelivered {
		t.Fatalf("after b's acknowledgement: %+v", batch)
	}
	batch, _ = q.take(t0.Add(10*time.Millisecond), false, 10, notBusy)
	if len(batch) != 1 || batch[0].id != a {
		t.Fatalf("at t0+10ms: %+v", batch)
	}
}
