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

// teamWithCarol is a group of w's own and carol, who is online.
func teamWithCarol(t *testing.T, w *world) (domain.Group, domain.LocalIdentity) {
	t.Helper()
	carol := mkLocal(t, "carol")
	w.dir.set(onlinePeer(carol.Identity))
	create, err := domain.NewGroupEntry(w.me, domain.NewGroupID(), domain.Epoch{}, domain.GroupCreate, time.Now(), []domain.Identity{carol.Identity}, "team")
	if err != nil {
		t.Fatal(err)
	}
	log, err := domain.NewGroupLog(create)
	if err != nil {
		t.Fatal(err)
	}
	return log.State(), carol
}

// A copy already handed to the fan-out's queue when its member is removed
// is marked failed, not written: the queue holds it while it writes an
// earlier copy to the same member, and the removal lands in between.
func TestGroupCopyQueuedBeforeItsMemberWasRemovedIsNotWritten(t *testing.T) {
	w := newWorld(t)
	g, _ := teamWithCarol(t, w)

	first := make(chan struct{})
	release := make(chan struct{})
	var writes atomic.Int32
	w.link.fail = func(env ports.Envelope, _ int) error {
		if env.Kind == ports.KindGroupMessage && writes.Add(1) == 1 {
			close(first)
			<-release // the first copy's write is under way
		}
		return nil
	}
	store := memory.NewGroupStore()
	// A retry far away: the second copy is written from the queue, not
	// from a fresh read of the outbox.
	fanout, err := app.NewPairwiseFanout(w.me, w.link, store, w.verify, w.clock, w.events, app.Backoff{Min: time.Minute, Max: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var removed atomic.Bool
	app.SetMemberCheck(fanout, func(domain.GroupID, domain.Username) bool { return !removed.Load() })
	run(t, fanout.Run)
	ctx := context.Background()

	m1, err := domain.NewOutgoingGroupMessage(g.ID(), g.Epoch(), w.me.Name(), "before", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := fanout.Deliver(ctx, g, m1); err != nil {
		t.Fatal(err)
	}
	<-first
	m2, err := domain.NewOutgoingGroupMessage(g.ID(), g.Epoch(), w.me.Name(), "after", time.Now().Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := fanout.Deliver(ctx, g, m2); err != nil {
		t.Fatal(err)
	}
	removed.Store(true)
	close(release)

	waitFor(t, "the second copy to be given up", func() bool {
		ds, err := store.GroupDeliveries(ctx, g.ID(), m2.ID())
		return err == nil && len(ds) == 1 && ds[0].State == domain.MessageFailed
	})
	time.Sleep(50 * time.Millisecond) // a write would have followed at once
	if got := len(w.link.envelopes(ports.KindGroupMessage)); got != 1 {
		t.Fatalf("%d copies written to carol, want only the one written before she was removed", got)
	}
}
