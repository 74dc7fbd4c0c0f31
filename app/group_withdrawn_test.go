package app_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// gatedGroupStore holds back the Delivered marks until gate is closed.
type gatedGroupStore struct {
	*memory.GroupStore
	gate chan struct{}
}

func (s *gatedGroupStore) SetGroupDelivery(ctx context.Context, group domain.GroupID, id domain.MessageID, member domain.Username, st domain.MessageState) (domain.GroupMessage, error) {
	if st == domain.MessageDelivered {
		<-s.gate
	}
	return s.GroupStore.SetGroupDelivery(ctx, group, id, member, st)
}

// A copy the member acknowledged before it was removed stays delivered,
// not failed, when the removal lands while its Delivered mark is on its
// way: the retries' outbox reads still hold the copy, and the first one's
// member check (the removal lands right after it) and the write's
// (withdrawn) both see the member gone.
func TestGroupCopyAcknowledgedBeforeItsMemberWasRemovedStaysDelivered(t *testing.T) {
	w := newWorld(t)
	g, carol := teamWithCarol(t, w)
	store := &gatedGroupStore{GroupStore: memory.NewGroupStore(), gate: make(chan struct{})}
	fanout, err := app.NewPairwiseFanout(w.me, w.link, store, w.verify, w.clock, w.events, app.Backoff{Min: 20 * time.Millisecond, Max: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// After the acknowledgement, the member check answers "member" once
	// (the outbox read's), then "removed": the removal lands right after
	// the read.
	var acked, removed atomic.Bool
	app.SetMemberCheck(fanout, func(domain.GroupID, domain.Username) bool {
		if removed.Load() {
			return false
		}
		if acked.Load() {
			removed.Store(true)
		}
		return true
	})
	run(t, fanout.Run)
	ctx := context.Background()
	m, err := domain.NewOutgoingGroupMessage(g.ID(), g.Epoch(), w.me.Name(), "hi", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := fanout.Deliver(ctx, g, m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the copy to be written", func() bool { return len(w.link.envelopes(ports.KindGroupMessage)) == 1 })
	waitFor(t, "its \"sent\" to be recorded", func() bool {
		ds, err := store.GroupDeliveries(ctx, g.ID(), m.ID())
		return err == nil && len(ds) == 1 && ds[0].State == domain.MessageSent
	})
	acked.Store(true)
	fanout.Acknowledged(ctx, carol.Name(), m.ID()) // its Delivered mark waits at the gate
	waitFor(t, "the removal after a retry's outbox read", removed.Load)
	time.Sleep(50 * time.Millisecond) // the retry's writes
	close(store.gate)
	time.Sleep(50 * time.Millisecond) // the Delivered mark
	ds, err := store.GroupDeliveries(ctx, g.ID(), m.ID())
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries: %v %v", ds, err)
	}
	if ds[0].State != domain.MessageDelivered {
		t.Fatalf("carol acknowledged the copy before she was removed, and it is %s", ds[0].State)
	}
}
