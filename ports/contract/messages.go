package contract

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// MessageStore checks the promises of ports.MessageStore. open returns a
// new, empty store for each subtest.
func MessageStore(t *testing.T, open func(t *testing.T) ports.MessageStore) {
	me, bob, carol := domain.MustUsername("alice"), domain.MustUsername("bob"), domain.MustUsername("carol")

	t.Run("outgoing round trip", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		m := outgoing(t, me, bob, "hello bob", at(1))
		if err := s.SaveOutgoing(ctx, m); err != nil {
			t.Fatalf("SaveOutgoing: %v", err)
		}
		h, err := s.History(ctx, bob, time.Time{}, 10)
		if err != nil || len(h) != 1 {
			t.Fatalf("History: %d messages, %v; want 1", len(h), err)
		}
		sameMessage(t, h[0], m)
		ob, err := s.Outbox(ctx, bob)
		if err != nil || len(ob) != 1 {
			t.Fatalf("Outbox: %d messages, %v; want 1", len(ob), err)
		}
		sameMessage(t, ob[0], m)
	})

	t.Run("incoming round trip and dedupe", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		id := domain.NewMessageID()
		m := incoming(t, id, bob, me, "hi alice", at(2))
		isNew, err := s.SaveIncoming(ctx, m)
		if err != nil || !isNew {
			t.Fatalf("first SaveIncoming = %v, %v; want true, nil", isNew, err)
		}
		again := incoming(t, id, bob, me, "a replay with another body", at(3))
		isNew, err = s.SaveIncoming(ctx, again)
		if err != nil || isNew {
			t.Fatalf("SaveIncoming of the same (sender, ID) = %v, %v; want false, nil", isNew, err)
		}
		lookalike := incoming(t, id, domain.MustUsername("BOB"), me, "same sender, other spelling", at(4))
		if isNew, err = s.SaveIncoming(ctx, lookalike); err != nil || isNew {
			t.Fatalf("SaveIncoming from the same account spelled otherwise = %v, %v; want false, nil", isNew, err)
		}
		other := incoming(t, id, carol, me, "same ID from carol", at(5))
		if isNew, err = s.SaveIncoming(ctx, other); err != nil || !isNew {
			t.Fatalf("SaveIncoming of the same ID from another sender = %v, %v; want true, nil", isNew, err)
		}
		h, err := s.History(ctx, bob, time.Time{}, 10)
		if err != nil || len(h) != 1 {
			t.Fatalf("History with bob: %d messages, %v; want 1", len(h), err)
		}
		sameMessage(t, h[0], m)
		if ob, err := s.Outbox(ctx, bob); err != nil || len(ob) != 0 {
			t.Fatalf("Outbox holds %d incoming messages (%v)", len(ob), err)
		}
	})

	t.Run("concurrent duplicates are stored once", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		m := incoming(t, domain.NewMessageID(), bob, me, "once", at(1))
		var wg sync.WaitGroup
		var mu sync.Mutex
		news := 0
		for range 8 {
			wg.Go(func() {
				isNew, err := s.SaveIncoming(ctx, m)
				if err != nil {
					t.Error(err)
				}
				if isNew {
					mu.Lock()
					news++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if news != 1 {
			t.Fatalf("%d of 8 concurrent SaveIncoming reported new, want 1", news)
		}
		if h, _ := s.History(ctx, bob, time.Time{}, 10); len(h) != 1 {
			t.Fatalf("history holds %d copies", len(h))
		}
	})

	t.Run("set state follows the domain rules", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		m := outgoing(t, me, bob, "track me", at(1))
		if err := s.SaveOutgoing(ctx, m); err != nil {
			t.Fatal(err)
		}
		for _, st := range []domain.MessageState{domain.MessageSent, domain.MessageSent, domain.MessageDelivered, domain.MessageRead} {
			got, err := s.SetState(ctx, m.ID(), st)
			if err != nil {
				t.Fatalf("SetState(%s): %v", st, err)
			}
			if got.State() != st || got.ID() != m.ID() || got.Body() != m.Body() {
				t.Fatalf("SetState(%s) returned %s %s %q", st, got.ID(), got.State(), got.Body())
			}
		}
		if _, err := s.SetState(ctx, m.ID(), domain.MessageQueued); !errors.Is(err, domain.ErrInvalidTransition) {
			t.Fatalf("read → queued: %v, want ErrInvalidTransition", err)
		}
		h, err := s.History(ctx, bob, time.Time{}, 1)
		if err != nil || len(h) != 1 || h[0].State() != domain.MessageRead {
			t.Fatalf("after a refused move the stored message is %v (%v), want read", h, err)
		}
		if _, err := s.SetState(ctx, domain.NewMessageID(), domain.MessageSent); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("SetState of an unknown ID: %v, want ErrNotFound", err)
		}
	})

	t.Run("mark states moves many messages at once, by the domain rules", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		var ms []domain.Message
		for i := range 5 {
			m := outgoing(t, me, bob, fmt.Sprint("mark ", i), at(i))
			if err := s.SaveOutgoing(ctx, m); err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		theirs := incoming(t, domain.NewMessageID(), bob, me, "not ours", at(9))
		if _, err := s.SaveIncoming(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetState(ctx, ms[2].ID(), domain.MessageRead); err != nil {
			t.Fatal(err)
		}
		marks := []ports.StateMark{
			{ID: ms[0].ID(), State: domain.MessageDelivered},
			{ID: ms[1].ID(), State: domain.MessageSent},
			{ID: ms[2].ID(), State: domain.MessageDelivered}, // read already: refused
			{ID: domain.NewMessageID(), State: domain.MessageDelivered},
			{ID: theirs.ID(), State: domain.MessageDelivered}, // not ours
			{ID: ms[4].ID(), State: domain.MessageDelivered},
		}
		moved, err := s.MarkStates(ctx, marks)
		if err != nil {
			t.Fatalf("MarkStates: %v", err)
		}
		want := []ports.StateMark{marks[0], marks[1], marks[5]}
		if fmt.Sprint(moved) != fmt.Sprint(want) {
			t.Fatalf("MarkStates moved %v, want %v", moved, want)
		}
		again, err := s.MarkStates(ctx, marks[:2])
		if err != nil || len(again) != 0 {
			t.Fatalf("MarkStates again = %v, %v; want nothing moved", again, err)
		}
		ob, err := s.Outbox(ctx, bob)
		if err != nil || len(ob) != 2 || ob[0].ID() != ms[1].ID() || ob[0].State() != domain.MessageSent || ob[1].ID() != ms[3].ID() {
			t.Fatalf("outbox after marks: %v (%v), want message 1 sent and message 3 queued", ob, err)
		}
		if moved, err := s.MarkStates(ctx, nil); err != nil || len(moved) != 0 {
			t.Fatalf("MarkStates(nil) = %v, %v", moved, err)
		}
	})

	t.Run("outbox holds queued and sent messages to one peer, oldest first", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		var toBob []domain.Message
		for i, body := range []string{"one", "two", "three", "four", "five"} {
			m := outgoing(t, me, bob, body, at(10-i)) // stored newest first
			toBob = append(toBob, m)
			if err := s.SaveOutgoing(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SaveOutgoing(ctx, outgoing(t, me, carol, "for carol", at(3))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveIncoming(ctx, incoming(t, domain.NewMessageID(), bob, me, "from bob", at(4))); err != nil {
			t.Fatal(err)
		}
		moves := map[string]domain.MessageState{"two": domain.MessageSent, "three": domain.MessageDelivered, "four": domain.MessageFailed}
		for _, m := range toBob {
			if st, ok := moves[m.Body()]; ok {
				if _, err := s.SetState(ctx, m.ID(), st); err != nil {
					t.Fatal(err)
				}
			}
		}
		ob, err := s.Outbox(ctx, bob)
		if err != nil {
			t.Fatal(err)
		}
		equalStrings(t, "outbox to bob", bodies(ob), []string{"five", "two", "one"})
		if ob[1].State() != domain.MessageSent || ob[0].State() != domain.MessageQueued {
			t.Fatalf("outbox states %s, %s; want queued, sent", ob[0].State(), ob[1].State())
		}
		ob, err = s.Outbox(ctx, domain.MustUsername("BOB"))
		if err != nil || len(ob) != 3 {
			t.Fatalf("outbox by another spelling of bob: %d (%v), want 3", len(ob), err)
		}
		peers, err := s.OutboxPeers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		equalStrings(t, "outbox peers", names(peers), names([]domain.Username{bob, carol}))

		for _, m := range toBob {
			if m.Body() != "three" && m.Body() != "four" {
				if _, err := s.SetState(ctx, m.ID(), domain.MessageDelivered); err != nil {
					t.Fatal(err)
				}
			}
		}
		if ob, _ := s.Outbox(ctx, bob); len(ob) != 0 {
			t.Fatalf("outbox to bob after delivery: %v", bodies(ob))
		}
		peers, _ = s.OutboxPeers(ctx)
		equalStrings(t, "outbox peers after delivery to bob", names(peers), names([]domain.Username{carol}))
		if ob, err := s.Outbox(ctx, domain.MustUsername("nobody")); err != nil || len(ob) != 0 {
			t.Fatalf("outbox to a stranger: %v, %v", ob, err)
		}
	})

	t.Run("history is per peer, oldest first, limited, before a time", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		for i := range 10 {
			body := fmt.Sprintf("m%d", i)
			if i%2 == 0 {
				if err := s.SaveOutgoing(ctx, outgoing(t, me, bob, body, at(i))); err != nil {
					t.Fatal(err)
				}
			} else if _, err := s.SaveIncoming(ctx, incoming(t, domain.NewMessageID(), bob, me, body, at(i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SaveOutgoing(ctx, outgoing(t, me, carol, "carol", at(5))); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name   string
			before time.Time
			limit  int
			want   []string
		}{
			{"all", time.Time{}, 100, []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"}},
			{"newest three", time.Time{}, 3, []string{"m7", "m8", "m9"}},
			{"before m5", at(5), 100, []string{"m0", "m1", "m2", "m3", "m4"}},
			{"two before m5", at(5), 2, []string{"m3", "m4"}},
			{"before everything", at(0), 10, []string{}},
		}
		for _, tc := range tests {
			h, err := s.History(ctx, bob, tc.before, tc.limit)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			equalStrings(t, tc.name, bodies(h), tc.want)
		}
		h, err := s.History(ctx, carol, time.Time{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		equalStrings(t, "history with carol", bodies(h), []string{"carol"})
	})

	t.Run("search finds every word, newest first, limited", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		msgs := []struct {
			body string
			in   bool
		}{
			{"The quick brown fox", false},
			{"a QUICK reply", true},
			{"brown bread, quickly", false},
			{"nothing here", true},
			{"Fox and quick", true},
		}
		for i, m := range msgs {
			var err error
			if m.in {
				_, err = s.SaveIncoming(ctx, incoming(t, domain.NewMessageID(), carol, me, m.body, at(i)))
			} else {
				err = s.SaveOutgoing(ctx, outgoing(t, me, bob, m.body, at(i)))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			query string
			limit int
			want  []string
		}{
			{"quick", 10, []string{"Fox and quick", "brown bread, quickly", "a QUICK reply", "The quick brown fox"}},
			{"quick", 2, []string{"Fox and quick", "brown bread, quickly"}},
			{"fox QUICK", 10, []string{"Fox and quick", "The quick brown fox"}},
			{"brown  quick", 10, []string{"brown bread, quickly", "The quick brown fox"}},
			{"absent", 10, []string{}},
			{"quick absent", 10, []string{}},
		}
		for _, tc := range tests {
			got, err := s.Search(ctx, tc.query, tc.limit)
			if err != nil {
				t.Fatalf("Search(%q): %v", tc.query, err)
			}
			equalStrings(t, fmt.Sprintf("Search(%q, %d)", tc.query, tc.limit), bodies(got), tc.want)
		}
	})
}
