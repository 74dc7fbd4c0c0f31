package contract

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// GroupStore checks the promises of ports.GroupStore. open returns a new,
// empty store for each subtest.
func GroupStore(t *testing.T, open func(t *testing.T) ports.GroupStore) {
	t.Run("log entries round trip, once each, verified", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		alice, bob := local(t, "alice"), ident(t, "bob")
		id := domain.NewGroupID()
		if _, err := s.GroupEntries(ctx, id); !errors.Is(err, domain.ErrUnknownGroup) {
			t.Fatalf("GroupEntries of an unknown group: %v", err)
		}
		create, err := domain.NewGroupEntry(alice, id, domain.Epoch{}, domain.GroupCreate, at(1), []domain.Identity{bob}, "team ✓")
		if err != nil {
			t.Fatal(err)
		}
		l, _ := domain.NewGroupLog(create)
		rename, err := l.Append(alice, domain.GroupChange{Op: domain.GroupRename, Name: "ops"}, at(2))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := s.SaveGroupEntries(ctx, id, []domain.GroupEntry{create, rename}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.GroupEntries(ctx, id)
		if err != nil || len(got) != 2 {
			t.Fatalf("GroupEntries: %d entries, %v; want 2", len(got), err)
		}
		r, err := domain.RebuildGroupLog(got)
		if err != nil || r.Head() != l.Head() || r.State().Name() != "ops" {
			t.Fatalf("rebuilt log at %v (%v), want %s named ops", r, err, l.Head().Short())
		}
		ids, err := s.GroupIDs(ctx)
		if err != nil || len(ids) != 1 || ids[0] != id {
			t.Fatalf("GroupIDs: %v, %v", ids, err)
		}
		other, _ := domain.NewGroupEntry(alice, domain.NewGroupID(), domain.Epoch{}, domain.GroupCreate, at(1), nil, "x")
		if err := s.SaveGroupEntries(ctx, id, []domain.GroupEntry{other}); err == nil {
			t.Fatal("an entry of another group was saved in this one")
		}
	})

	t.Run("outgoing deliveries per member, outbox in order", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		me, bob, carol := domain.MustUsername("alice"), domain.MustUsername("bob"), domain.MustUsername("carol")
		id := domain.NewGroupID()
		var msgs []domain.GroupMessage
		for i := range 3 {
			m, err := domain.NewOutgoingGroupMessage(id, domain.Epoch{1}, me, fmt.Sprintf("m%d", i), at(10+i))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SaveGroupOutgoing(ctx, m, []domain.Username{bob, carol}); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
		members, err := s.GroupOutboxMembers(ctx)
		if err != nil || fmt.Sprint(members) != fmt.Sprint([]domain.Username{bob, carol}) {
			t.Fatalf("GroupOutboxMembers: %v, %v", members, err)
		}
		if _, err := s.SetGroupDelivery(ctx, id, msgs[0].ID(), bob, domain.MessageSent); err != nil {
			t.Fatal(err)
		}
		m, err := s.SetGroupDelivery(ctx, id, msgs[0].ID(), bob, domain.MessageDelivered)
		if err != nil || m.ID() != msgs[0].ID() || m.Body() != "m0" {
			t.Fatalf("SetGroupDelivery: %v, %v", m, err)
		}
		if _, err := s.SetGroupDelivery(ctx, id, msgs[0].ID(), bob, domain.MessageQueued); !errors.Is(err, domain.ErrInvalidTransition) {
			t.Fatalf("delivered → queued: %v, want ErrInvalidTransition", err)
		}
		if _, err := s.SetGroupDelivery(ctx, id, msgs[0].ID(), domain.MustUsername("dave"), domain.MessageSent); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("delivery to a non-recipient: %v, want ErrNotFound", err)
		}
		ob, err := s.GroupOutbox(ctx, bob)
		if err != nil || len(ob) != 2 || ob[0].Message.Body() != "m1" || ob[1].Message.Body() != "m2" || ob[0].State != domain.MessageQueued {
			t.Fatalf("bob's outbox: %+v, %v", ob, err)
		}
		ob, err = s.GroupOutbox(ctx, domain.MustUsername("CAROL"))
		if err != nil || len(ob) != 3 || !ob[0].Member.Equal(carol) {
			t.Fatalf("carol's outbox: %d, %v", len(ob), err)
		}
		ds, err := s.GroupDeliveries(ctx, id, msgs[0].ID())
		want := []domain.GroupDelivery{{Member: bob, State: domain.MessageDelivered}, {Member: carol, State: domain.MessageQueued}}
		if err != nil || fmt.Sprint(ds) != fmt.Sprint(want) {
			t.Fatalf("GroupDeliveries: %v, %v; want %v", ds, err, want)
		}
		if _, err := s.GroupDeliveries(ctx, id, domain.NewMessageID()); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("deliveries of an unknown message: %v", err)
		}
	})

	t.Run("incoming deduplicated, history in time order", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		id := domain.NewGroupID()
		bob := domain.MustUsername("bob")
		late, _ := domain.NewIncomingGroupMessage(domain.NewMessageID(), id, domain.Epoch{1}, bob, at(20), "late")
		early, _ := domain.NewIncomingGroupMessage(domain.NewMessageID(), id, domain.Epoch{1}, bob, at(10), "early")
		for _, m := range []domain.GroupMessage{late, early, late} {
			if _, err := s.SaveGroupIncoming(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		if isNew, err := s.SaveGroupIncoming(ctx, early); err != nil || isNew {
			t.Fatalf("a repeat: new %v, %v", isNew, err)
		}
		h, err := s.GroupHistory(ctx, id, time.Time{}, 10)
		if err != nil || len(h) != 2 || h[0].Body() != "early" || h[1].Body() != "late" || h[1].Epoch() != (domain.Epoch{1}) || h[1].Direction() != domain.Incoming {
			t.Fatalf("history: %v, %v", h, err)
		}
		if h, _ := s.GroupHistory(ctx, id, at(20), 10); len(h) != 1 || h[0].Body() != "early" {
			t.Fatalf("history before the late one: %v", h)
		}
		if h, _ := s.GroupHistory(ctx, id, time.Time{}, 1); len(h) != 1 || h[0].Body() != "late" {
			t.Fatalf("the newest one: %v", h)
		}
		if h, _ := s.GroupHistory(ctx, domain.NewGroupID(), time.Time{}, 10); len(h) != 0 {
			t.Fatalf("history of another group: %v", h)
		}
	})
}
