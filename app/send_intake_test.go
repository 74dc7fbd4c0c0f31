package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// heldStore holds the SaveOutgoing of one body until released, and counts
// the outgoing messages stored.
type heldStore struct {
	*memory.MessageStore
	body    string
	release chan struct{}
	mu      sync.Mutex
	stored  int
}

func (s *heldStore) SaveOutgoingStaged(ctx context.Context, m domain.Message, committed func()) error {
	if m.Body() == s.body {
		<-s.release
	}
	err := s.MessageStore.SaveOutgoingStaged(ctx, m, committed)
	s.mu.Lock()
	s.stored++
	s.mu.Unlock()
	return err
}

func (s *heldStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored
}

// Sends started one after another while the first one's store write is
// slow are reported and written to the peer in the order they were
// started — also by a full round of the outbox, which finds the later ones
// in the store first.
func TestStartedSendsAreReportedAndWrittenInStartOrder(t *testing.T) {
	store := &heldStore{MessageStore: memory.NewMessageStore(), body: "m0", release: make(chan struct{})}
	w := worldWithStore(t, store)
	run(t, w.send.Run)
	ctx := context.Background()
	const n = 200
	pending := make([]*app.PendingSend, n)
	for i := range n {
		p, err := w.send.Start(ctx, app.SendMessageInput{To: w.bob.Name(), Text: fmt.Sprint("m", i)})
		if err != nil {
			t.Fatal(err)
		}
		pending[i] = p
	}
	waitFor(t, "every message but the first stored", func() bool { return store.count() == n-1 })
	w.send.Flush(w.bob.Name()) // a full round: the outbox holds m1…m199, not m0
	close(store.release)
	var ids []domain.MessageID
	for i, p := range pending {
		m, err := p.Wait()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Body() != fmt.Sprint("m", i) {
			t.Fatalf("message %d is %q", i, m.Body())
		}
		ids = append(ids, m.ID())
	}
	waitFor(t, "every message written", func() bool {
		seen := map[domain.MessageID]bool{}
		for _, e := range w.link.envelopes(ports.KindChat) {
			seen[e.Env.MessageID] = true
		}
		return len(seen) == n
	})
	var order []domain.MessageID
	seen := map[domain.MessageID]bool{}
	for _, e := range w.link.envelopes(ports.KindChat) {
		if !seen[e.Env.MessageID] {
			seen[e.Env.MessageID] = true
			order = append(order, e.Env.MessageID)
		}
	}
	for i := range ids {
		if order[i] != ids[i] {
			t.Fatalf("write %d is not message %d: written out of the order started", i, i)
		}
	}
	var reported []domain.MessageID
	for _, e := range w.events.all() {
		if me, ok := e.(ports.MessageEvent); ok {
			reported = append(reported, me.Message.ID())
		}
	}
	if fmt.Sprint(reported) != fmt.Sprint(ids) {
		t.Fatalf("messages reported out of the order started")
	}
}

// A send whose store write fails is neither reported nor written, and
// does not hold up the ones started after it.
func TestFailedStartedSendIsDropped(t *testing.T) {
	store := &failingStore{MessageStore: memory.NewMessageStore(), body: "bad"}
	w := worldWithStore(t, store)
	run(t, w.send.Run)
	ctx := context.Background()
	var pending []*app.PendingSend
	for _, body := range []string{"a", "bad", "c"} {
		p, err := w.send.Start(ctx, app.SendMessageInput{To: w.bob.Name(), Text: body})
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, p)
	}
	var bodies []string
	for _, p := range pending {
		m, err := p.Wait()
		if err == nil {
			bodies = append(bodies, m.Body())
		}
	}
	if fmt.Sprint(bodies) != "[a c]" {
		t.Fatalf("stored %v, want [a c]", bodies)
	}
	waitFor(t, "two messages written", func() bool { return len(w.link.envelopes(ports.KindChat)) >= 2 })
	for _, e := range w.link.envelopes(ports.KindChat) {
		if e.Env.Body == "bad" {
			t.Fatal("a message whose store failed was written")
		}
	}
}

type failingStore struct {
	*memory.MessageStore
	body string
}

func (s *failingStore) SaveOutgoingStaged(ctx context.Context, m domain.Message, committed func()) error {
	if m.Body() == s.body {
		return fmt.Errorf("simulated disk error")
	}
	return s.MessageStore.SaveOutgoingStaged(ctx, m, committed)
}

// slowFlushStore commits a message at once and holds its durability (the
// fsync) until released.
type slowFlushStore struct {
	*memory.MessageStore
	flush chan struct{}
}

func (s *slowFlushStore) SaveOutgoingStaged(ctx context.Context, m domain.Message, committed func()) error {
	if err := s.MessageStore.SaveOutgoingStaged(ctx, m, committed); err != nil {
		return err
	}
	<-s.flush
	return nil
}

// A message goes to the peer once it is committed, while the store makes
// it durable; an acknowledgement that comes back before then is reported
// only after the message itself.
func TestMessageIsWrittenWhileItIsFlushedAndDeliveredAfterItIsReported(t *testing.T) {
	store := &slowFlushStore{MessageStore: memory.NewMessageStore(), flush: make(chan struct{})}
	w := worldWithStore(t, store)
	run(t, w.send.Run)
	run(t, w.receive.Run)
	ctx := context.Background()
	p, err := w.send.Start(ctx, app.SendMessageInput{To: w.bob.Name(), Text: "fast"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message written before it is durable", func() bool { return len(w.link.envelopes(ports.KindChat)) == 1 })
	id := w.link.envelopes(ports.KindChat)[0].Env.MessageID
	if err := w.receive.Pipeline(ctx, app.ReceiveMessageInput{From: w.bob.Identity,
		Envelope: ports.Envelope{Kind: ports.KindDelivered, MessageID: id}}); err != nil {
		t.Fatal(err)
	}
	close(store.flush)
	m, err := p.Wait()
	if err != nil || m.ID() != id {
		t.Fatalf("Wait = %v, %v", m.ID(), err)
	}
	waitFor(t, "delivered", func() bool {
		box, err := store.Outbox(ctx, w.bob.Name())
		return err == nil && len(box) == 0
	})
	waitFor(t, "the delivered event", func() bool {
		for _, e := range w.events.all() {
			if se, ok := e.(ports.MessageStateEvent); ok && se.ID == id && se.State == domain.MessageDelivered {
				return true
			}
		}
		return false
	})
	reported := false
	for _, e := range w.events.all() {
		switch e := e.(type) {
		case ports.MessageEvent:
			reported = reported || e.Message.ID() == id
		case ports.MessageStateEvent:
			if e.ID == id && !reported {
				t.Fatalf("state %s reported before the message", e.State)
			}
		}
	}
}
