package memory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := memory.NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	c.Advance(time.Minute)
	if got := c.Now(); !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("after Advance Now = %v", got)
	}
	later := start.Add(time.Hour)
	c.Set(later)
	if got := c.Now(); !got.Equal(later) {
		t.Fatalf("after Set Now = %v", got)
	}

	r := memory.NewRealClock()
	r.Advance(time.Hour)
	if d := r.Now().Sub(time.Now()); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("real clock advanced by an hour is %v ahead", d)
	}
	r.Set(start)
	if !r.Now().Equal(start) {
		t.Fatal("Set does not freeze a real clock")
	}
}

func TestKeyStore(t *testing.T) {
	ctx := context.Background()
	ks := memory.NewKeyStore()
	if _, err := ks.Load(ctx); !errors.Is(err, domain.ErrNoIdentity) {
		t.Fatalf("Load of empty store: %v, want ErrNoIdentity", err)
	}
	me := newLocal(t, "alice")
	if err := ks.Save(ctx, me); err != nil {
		t.Fatal(err)
	}
	got, err := ks.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !got.SameKey(me.PublicKey()) || !got.Name().Equal(me.Name()) {
		t.Fatal("Load returned another identity")
	}
}

func TestMessageStoreCap(t *testing.T) {
	ctx := context.Background()
	s := memory.NewMessageStoreWithCaps(2, 1<<20)
	alice, bob := domain.MustUsername("alice"), domain.MustUsername("bob")
	for i := range 2 {
		m, _ := domain.NewIncomingMessage(domain.NewMessageID(), bob, alice, time.Now(), fmt.Sprint("hi ", i))
		if _, err := s.SaveIncoming(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := domain.NewIncomingMessage(domain.NewMessageID(), bob, alice, time.Now(), "one too many")
	if _, err := s.SaveIncoming(ctx, m); !errors.Is(err, domain.ErrTooLarge) {
		t.Fatalf("third message: %v, want ErrTooLarge", err)
	}
}

func TestMessageStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	s := memory.NewMessageStore()
	alice, bob := domain.MustUsername("alice"), domain.MustUsername("bob")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				m, _ := domain.NewOutgoingMessage(alice, bob, fmt.Sprintf("w%d m%d", w, i), time.Now())
				if err := s.SaveOutgoing(ctx, m); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.SetState(ctx, m.ID(), domain.MessageSent); err != nil {
					t.Error(err)
				}
				if _, err := s.Search(ctx, "m1", 10); err != nil {
					t.Error(err)
				}
				if _, err := s.History(ctx, bob, time.Time{}, 10); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	out, err := s.Outbox(ctx, bob)
	if err != nil || len(out) != 400 {
		t.Fatalf("outbox has %d messages (%v), want 400", len(out), err)
	}
}

func TestTrustStoreCap(t *testing.T) {
	ctx := context.Background()
	s := memory.NewTrustStoreWithCap(1)
	if err := s.Pin(ctx, newLocal(t, "alice").Identity, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, newLocal(t, "bob").Identity, time.Now()); !errors.Is(err, domain.ErrTooLarge) {
		t.Fatalf("second pin: %v, want ErrTooLarge", err)
	}
}

func TestPresenceStoreCopiesEndpoints(t *testing.T) {
	ctx := context.Background()
	s := memory.NewPresenceStore()
	id := newLocal(t, "alice").Identity
	eps := domain.Endpoints{Link: []string{"mem:a"}}
	if err := s.Put(ctx, ports.Presence{Identity: id, Endpoints: eps}); err != nil {
		t.Fatal(err)
	}
	eps.Link[0] = "changed"
	p, err := s.Get(ctx, domain.MustUsername("ALICE"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Endpoints.Link[0] != "mem:a" {
		t.Fatalf("stored endpoint changed through the caller's slice: %q", p.Endpoints.Link[0])
	}
	full := memory.NewPresenceStoreWithCap(1)
	_ = full.Put(ctx, ports.Presence{Identity: id})
	if err := full.Put(ctx, ports.Presence{Identity: newLocal(t, "bob").Identity}); !errors.Is(err, domain.ErrTooLarge) {
		t.Fatalf("put beyond cap: %v", err)
	}
	if err := full.Put(ctx, ports.Presence{Identity: id}); err != nil {
		t.Fatalf("replacing at cap: %v", err)
	}
}

func TestAccountStoreBind(t *testing.T) {
	ctx := context.Background()
	s := memory.NewAccountStore()
	a := newLocal(t, "alice").Identity
	if err := s.Bind(ctx, a, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Bind(ctx, newLocal(t, "a1ice").Identity, time.Now()); !errors.Is(err, domain.ErrNameTaken) {
		t.Fatalf("look-alike with another key: %v, want ErrNameTaken", err)
	}
}

// The memory store orders messages of equal SentAt by the order they were
// stored (the port leaves ties open).
func TestMessageStoreTiesKeepInsertionOrder(t *testing.T) {
	ctx := context.Background()
	s := memory.NewMessageStore()
	alice, bob := domain.MustUsername("alice"), domain.MustUsername("bob")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		m, _ := domain.NewOutgoingMessage(alice, bob, fmt.Sprint("same time ", i), now)
		if err := s.SaveOutgoing(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	h, _ := s.History(ctx, bob, time.Time{}, 10)
	ob, _ := s.Outbox(ctx, bob)
	found, _ := s.Search(ctx, "same", 10)
	for i := range 5 {
		if h[i].Body() != fmt.Sprint("same time ", i) || ob[i].Body() != h[i].Body() {
			t.Fatalf("history/outbox %d: %q %q", i, h[i].Body(), ob[i].Body())
		}
		if found[i].Body() != fmt.Sprint("same time ", 4-i) {
			t.Fatalf("search %d (newest first): %q", i, found[i].Body())
		}
	}
}
