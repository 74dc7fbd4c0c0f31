package app_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// gatedStore holds every SaveIncoming until the test opens its gate, and
// counts state changes (SetState, MarkStates) by state.
type gatedStore struct {
	*memory.MessageStore
	mu      sync.Mutex
	gates   map[domain.MessageID]chan error // nil: not gated
	waiting map[domain.MessageID]bool
	states  map[domain.MessageState]int
	// marks, if set, holds every MarkStates until it is closed; outboxReads
	// counts Outbox calls.
	marks       chan struct{}
	outboxReads int
}

func (s *gatedStore) Outbox(ctx context.Context, peer domain.Username) ([]domain.Message, error) {
	s.mu.Lock()
	s.outboxReads++
	s.mu.Unlock()
	return s.MessageStore.Outbox(ctx, peer)
}

func (s *gatedStore) reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outboxReads
}

func newGatedStore() *gatedStore {
	return &gatedStore{MessageStore: memory.NewMessageStore(), gates: make(map[domain.MessageID]chan error),
		waiting: make(map[domain.MessageID]bool), states: make(map[domain.MessageState]int)}
}

func (s *gatedStore) gate(id domain.MessageID) {
	s.mu.Lock()
	s.gates[id] = make(chan error, 1)
	s.mu.Unlock()
}

func (s *gatedStore) open(id domain.MessageID, err error) {
	s.mu.Lock()
	g := s.gates[id]
	s.mu.Unlock()
	if g != nil {
		g <- err
	}
}

func (s *gatedStore) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}

func (s *gatedStore) SaveIncoming(ctx context.Context, m domain.Message) (bool, error) {
	s.mu.Lock()
	g := s.gates[m.ID()]
	if g != nil {
		s.waiting[m.ID()] = true
	}
	s.mu.Unlock()
	if g != nil {
		var err error
		select {
		case err = <-g:
		case <-ctx.Done():
			err = ctx.Err()
		}
		s.mu.Lock()
		delete(s.gates, m.ID()) // a gate holds one store
		delete(s.waiting, m.ID())
		s.mu.Unlock()
		if err != nil {
			return false, err
		}
	}
	return s.MessageStore.SaveIncoming(ctx, m)
}

func (s *gatedStore) SetState(ctx context.Context, id domain.MessageID, st domain.MessageState) (domain.Message, error) {
	s.mu.Lock()
	s.states[st]++
	s.mu.Unlock()
	return s.MessageStore.SetState(ctx, id, st)
}

func (s *gatedStore) MarkStates(ctx context.Context, marks []ports.StateMark) ([]ports.StateMark, error) {
	if s.marks != nil {
		select {
		case <-s.marks:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	for _, mk := range marks {
		s.states[mk.State]++
	}
	s.mu.Unlock()
	return s.MessageStore.MarkStates(ctx, marks)
}

// setStates counts the state changes asked for by SetState and MarkStates.
func (s *gatedStore) setStates(st domain.MessageState) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states[st]
}

// worldWithStore is newWorld over another message store.
func worldWithStore(t *testing.T, store ports.MessageStore) *world {
	t.Helper()
	w := newWorld(t)
	var err error
	if w.send, err = app.NewSendMessage(w.me, w.link, store, w.verify, w.clock, w.events, fastRetry); err != nil {
		t.Fatal(err)
	}
	if w.receive, err = app.NewReceiveMessage(w.me, w.link, store, w.verify, w.send, w.events); err != nil {
		t.Fatal(err)
	}
	return w
}

func chatFrom(from domain.Identity, i int, at time.Time) app.ReceiveMessageInput {
	return app.ReceiveMessageInput{From: from, Envelope: ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(),
		SentAt: at.Add(time.Duration(i) * time.Millisecond), Body: fmt.Sprintf("message %d", i)}}
}

func reportedMessages(w *world) []domain.MessageID {
	var ids []domain.MessageID
	for _, e := range w.events.all() {
		if me, ok := e.(ports.MessageEvent); ok {
			ids = append(ids, me.Message.ID())
		}
	}
	return ids
}

func ackedMessages(w *world) []domain.MessageID {
	var ids []domain.MessageID
	for _, s := range w.link.envelopes(ports.KindDelivered) {
		ids = append(ids, s.Env.MessageID)
	}
	return ids
}

// Chats from one peer are stored at once, and reported and acknowledged in
// the order they arrived, whatever order their stores finish in; a chat
// the store refused is neither reported nor acknowledged.
func TestPipelineStoresAtOnceAndReportsInArrivalOrder(t *testing.T) {
	store := newGatedStore()
	w := worldWithStore(t, store)
	run(t, w.receive.Run)
	waitFor(t, "the pipeline running", w.receive.Pipelining)
	ctx := context.Background()
	const n = 6
	now := time.Now()
	var in []app.ReceiveMessageInput
	for i := range n {
		c := chatFrom(w.bob.Identity, i, now)
		store.gate(c.Envelope.MessageID)
		in = append(in, c)
	}
	for _, c := range in {
		if err := w.receive.Pipeline(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// Pipeline returned for every chat while none is stored: all are being
	// stored at once.
	waitFor(t, "every store in flight", func() bool { return store.inFlight() == n })
	refused := in[3].Envelope.MessageID
	for i := n - 1; i >= 1; i-- {
		var err error
		if in[i].Envelope.MessageID == refused {
			err = errors.New("disk full")
		}
		store.open(in[i].Envelope.MessageID, err)
	}
	// Nothing after the first is reported before the first is stored.
	time.Sleep(20 * time.Millisecond) // give a wrong implementation the time to misbehave
	if got := reportedMessages(w); len(got) != 0 {
		t.Fatalf("%d messages reported before the first was stored", len(got))
	}
	if got := ackedMessages(w); len(got) != 0 {
		t.Fatalf("%d messages acknowledged before the first was stored", len(got))
	}
	store.open(in[0].Envelope.MessageID, nil)
	var want []domain.MessageID
	for _, c := range in {
		if c.Envelope.MessageID != refused {
			want = append(want, c.Envelope.MessageID)
		}
	}
	waitFor(t, "every stored message acknowledged", func() bool { return len(ackedMessages(w)) == len(want) })
	for name, got := range map[string][]domain.MessageID{"reported": reportedMessages(w), "acknowledged": ackedMessages(w)} {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s %v, want %v", name, got, want)
		}
	}
	if u := w.receive.Unread(w.bob.Name()); u != len(want) {
		t.Fatalf("unread %d, want %d", u, len(want))
	}
	// The refused chat comes again (the sender retries): stored, reported
	// and acknowledged; a repeat of a stored one is only acknowledged.
	again := in[3]
	store.gate(again.Envelope.MessageID)
	if err := w.receive.Pipeline(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := w.receive.Pipeline(ctx, in[0]); err != nil {
		t.Fatal(err)
	}
	store.open(again.Envelope.MessageID, nil)
	waitFor(t, "the retried chat and the repeat acknowledged", func() bool { return len(ackedMessages(w)) == len(want)+2 })
	acks := ackedMessages(w)
	if acks[len(want)] != refused || acks[len(want)+1] != in[0].Envelope.MessageID {
		t.Fatalf("acknowledgements %v end out of order", acks)
	}
	if got := reportedMessages(w); len(got) != len(want)+1 || got[len(want)] != refused {
		t.Fatalf("reported %v, want the retried chat once more", got)
	}
}

// Before Run, Pipeline is Handle: the chat is stored when it returns.
func TestPipelineBeforeRunIsHandle(t *testing.T) {
	w := newWorld(t)
	if w.receive.Pipelining() {
		t.Fatal("pipelining before Run")
	}
	c := chatFrom(w.bob.Identity, 0, time.Now())
	if err := w.receive.Pipeline(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	h, err := w.messages.History(context.Background(), w.bob.Name(), time.Time{}, 10)
	if err != nil || len(h) != 1 || h[0].ID() != c.Envelope.MessageID {
		t.Fatalf("history %v, err %v: want the chat", h, err)
	}
	bad := ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: string([]byte{0xff})}
	if err := w.receive.Pipeline(context.Background(), app.ReceiveMessageInput{From: w.bob.Identity, Envelope: bad}); !errors.Is(err, domain.ErrInvalidUTF8) {
		t.Fatalf("invalid chat: err %v", err)
	}
}

// Many senders at once while the outbox runs: every message is written
// once in each sender's order, acknowledgements through Pipeline deliver
// them all, and each message's state events only move forward.
func TestConcurrentSendsAreWrittenInOrderAndDelivered(t *testing.T) {
	store := newGatedStore()
	w := worldWithStore(t, store)
	run(t, w.send.Run)
	run(t, w.receive.Run)
	ctx := context.Background()
	const senders, each = 8, 40
	ids := make([][]domain.MessageID, senders)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m, err := w.send.Handle(ctx, app.SendMessageInput{To: w.bob.Name(), Text: fmt.Sprintf("%d/%d", g, i)})
				if err != nil {
					t.Error(err)
					return
				}
				ids[g] = append(ids[g], m.ID())
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every message written", func() bool {
		distinct := map[domain.MessageID]bool{}
		for _, s := range w.link.envelopes(ports.KindChat) {
			distinct[s.Env.MessageID] = true
		}
		return len(distinct) == senders*each
	})
	first := map[domain.MessageID]int{}
	for i, s := range w.link.envelopes(ports.KindChat) {
		if _, ok := first[s.Env.MessageID]; !ok {
			first[s.Env.MessageID] = i
		}
	}
	for g := range senders {
		for i := 1; i < each; i++ {
			if first[ids[g][i-1]] > first[ids[g][i]] {
				t.Fatalf("sender %d: message %d written before message %d", g, i, i-1)
			}
		}
	}
	for g := range senders {
		for _, id := range ids[g] {
			if err := w.receive.Pipeline(ctx, app.ReceiveMessageInput{From: w.bob.Identity,
				Envelope: ports.Envelope{Kind: ports.KindDelivered, MessageID: id}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "the outbox empty", func() bool {
		box, err := store.Outbox(ctx, w.bob.Name())
		return err == nil && len(box) == 0
	})
	// The events of a batch of marks follow its store write.
	var last map[domain.MessageID]domain.MessageState
	waitFor(t, "every message reported delivered", func() bool {
		last = map[domain.MessageID]domain.MessageState{}
		for _, e := range w.events.all() {
			if se, ok := e.(ports.MessageStateEvent); ok {
				if prev, seen := last[se.ID]; seen && se.State <= prev {
					t.Fatalf("message %s: state event %s after %s", se.ID, se.State, prev)
				}
				last[se.ID] = se.State
			}
		}
		for g := range senders {
			for _, id := range ids[g] {
				if last[id] != domain.MessageDelivered {
					return false
				}
			}
		}
		return true
	})
	if n := store.setStates(domain.MessageDelivered); n != senders*each {
		t.Fatalf("%d SetState(delivered), want %d", n, senders*each)
	}
}

// slowSentWorld is worldWithStore with a minimum retry of 8 s, so a
// message's "sent" waits Min/4 = 2 s before it is applied.
func slowSentWorld(t *testing.T, store ports.MessageStore) *world {
	t.Helper()
	w := newWorld(t)
	slow := app.Backoff{Min: 8 * time.Second, Max: 16 * time.Second}
	var err error
	if w.send, err = app.NewSendMessage(w.me, w.link, store, w.verify, w.clock, w.events, slow); err != nil {
		t.Fatal(err)
	}
	if w.receive, err = app.NewReceiveMessage(w.me, w.link, store, w.verify, w.send, w.events); err != nil {
		t.Fatal(err)
	}
	return w
}

// An acknowledgement that arrives before a message's "sent" is applied
// replaces it: the message goes from queued to delivered with one write.
func TestAnEarlyAcknowledgementSparesTheSentWrite(t *testing.T) {
	store := newGatedStore()
	w := slowSentWorld(t, store)
	run(t, w.send.Run)
	run(t, w.receive.Run)
	ctx := context.Background()
	sendAndAcknowledge(t, w, "quick")
	waitFor(t, "delivered", func() bool {
		box, err := store.Outbox(ctx, w.bob.Name())
		return err == nil && len(box) == 0
	})
	if n := store.setStates(domain.MessageSent); n != 0 {
		t.Fatalf("%d SetState(sent) for a message acknowledged at once", n)
	}
}

// The Delivered event goes out at the peer's acknowledgement, without
// waiting for its lazy mark to be committed (which waits behind every
// other write of the store), and once only; until the mark is committed,
// History reports the message delivered all the same.
func TestDeliveredIsReportedAtTheAcknowledgementBeforeItsMark(t *testing.T) {
	store := newGatedStore()
	store.marks = make(chan struct{})
	w := slowSentWorld(t, store) // no "sent" mark in flight at the acknowledgement
	run(t, w.send.Run)
	run(t, w.receive.Run)
	ctx := context.Background()
	delivered := func(id domain.MessageID) int {
		n := 0
		for _, e := range w.events.all() {
			if se, ok := e.(ports.MessageStateEvent); ok && se.ID == id && se.State == domain.MessageDelivered {
				n++
			}
		}
		return n
	}
	m := sendAndAcknowledge(t, w, "early")
	waitFor(t, "the delivered event while its mark waits", func() bool { return delivered(m.ID()) == 1 })
	if n := store.setStates(domain.MessageDelivered); n != 0 {
		t.Fatalf("%d delivered marks stored already: the gate did not hold", n)
	}
	raw, err := store.History(ctx, w.bob.Name(), time.Time{}, 10)
	if err != nil || len(raw) != 1 || raw[0].State() == domain.MessageDelivered {
		t.Fatalf("the store before the mark: %v, %v", raw, err)
	}
	h, err := app.NewSearchHistoryOver(store, w.send)
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.History(ctx, app.SearchHistoryInput{With: w.bob.Name()})
	if err != nil || len(got) != 1 || got[0].State() != domain.MessageDelivered {
		t.Fatalf("History before the mark is committed: %v, %v; want the message delivered", got, err)
	}
	close(store.marks)
	waitFor(t, "the mark stored", func() bool { return store.setStates(domain.MessageDelivered) == 1 })
	waitFor(t, "the outbox empty", func() bool {
		box, err := store.Outbox(ctx, w.bob.Name())
		return err == nil && len(box) == 0
	})
	if n := delivered(m.ID()); n != 1 {
		t.Fatalf("%d delivered events, want 1", n)
	}
}

// A message acknowledged whose "delivered" has not reached the store yet
// is still in the outbox the flusher reads every retry interval: it is not
// written again (which made the peer store and acknowledge it again, and
// at thousands a second made the pipeline fall behind for good).
func TestAnAcknowledgedMessageIsNotWrittenAgainBeforeItsMarkIsStored(t *testing.T) {
	store := newGatedStore()
	store.marks = make(chan struct{})
	w := worldWithStore(t, store)
	run(t, w.send.Run)
	run(t, w.receive.Run)
	ctx := context.Background()
	m := sendAndAcknowledge(t, w, "once")
	// A repeated acknowledgement (bob answers every copy) changes nothing.
	if err := w.receive.Pipeline(ctx, app.ReceiveMessageInput{From: w.bob.Identity,
		Envelope: ports.Envelope{Kind: ports.KindDelivered, MessageID: m.ID()}}); err != nil {
		t.Fatal(err)
	}
	// Once a round has begun after the acknowledgement (a round that read
	// the outbox before it may still write it: that is a retry, 10 ms
	// after the last write), several more (10 ms apart) read the
	// message, still sent, and none writes it.
	after := store.reads()
	waitFor(t, "a round after the acknowledgement", func() bool { return store.reads() >= after+1 })
	written := len(w.link.envelopes(ports.KindChat))
	waitFor(t, "three more outbox reads", func() bool { return store.reads() >= after+4 })
	if n := len(w.link.envelopes(ports.KindChat)); n != written {
		t.Fatalf("the acknowledged message was written %d times more", n-written)
	}
	close(store.marks)
	waitFor(t, "delivered", func() bool {
		box, err := store.MessageStore.Outbox(ctx, w.bob.Name())
		return err == nil && len(box) == 0
	})
	delivered := 0
	for _, e := range w.events.all() {
		if se, ok := e.(ports.MessageStateEvent); ok && se.ID == m.ID() && se.State == domain.MessageDelivered {
			delivered++
		}
	}
	if delivered != 1 {
		t.Fatalf("%d delivered events, want 1", delivered)
	}
}

// sendAndAcknowledge sends text to bob, the first message of w, waits
// until it is written and hands w bob's acknowledgement of it.
func sendAndAcknowledge(t *testing.T, w *world, text string) domain.Message {
	t.Helper()
	ctx := context.Background()
	m, err := w.send.Handle(ctx, app.SendMessageInput{To: w.bob.Name(), Text: text})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message written", func() bool { return len(w.link.envelopes(ports.KindChat)) >= 1 })
	if err := w.receive.Pipeline(ctx, app.ReceiveMessageInput{From: w.bob.Identity,
		Envelope: ports.Envelope{Kind: ports.KindDelivered, MessageID: m.ID()}}); err != nil {
		t.Fatal(err)
	}
	return m
}
