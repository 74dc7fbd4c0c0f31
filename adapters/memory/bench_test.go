package memory_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// counter is an EnvelopeHandler that counts and signals at a target.
type counter struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
}

func (c *counter) HandleEnvelope(context.Context, domain.Identity, ports.Envelope) error {
	if c.n.Add(1) == c.target {
		close(c.done)
	}
	return nil
}

// BenchmarkLinkSend measures envelopes per second from one host to another,
// delivered to the handler.
func BenchmarkLinkSend(b *testing.B) {
	n := memory.NewNetwork()
	a, _, _ := memory.NewHost(n, newLocal(b, "alice"), memory.AcceptAll)
	r, _, _ := memory.NewHost(n, newLocal(b, "bob"), memory.AcceptAll)
	defer a.Close()
	defer r.Close()
	c := &counter{target: int64(b.N), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Link().Serve(ctx, c)
	if err := r.WaitServing(ctx, false); err != nil {
		b.Fatal(err)
	}
	env := ports.Envelope{Kind: ports.KindChat, Body: "hello, this is a chat message"}
	b.ResetTimer()
	for range b.N {
		if err := a.Link().Send(ctx, r.Peer(), env); err != nil {
			b.Fatal(err)
		}
	}
	<-c.done
}

// BenchmarkPresenceStore measures the registry's presence table at 10k
// online users: a heartbeat-like Get+Put, and a full List.
func BenchmarkPresenceStore(b *testing.B) {
	ctx := context.Background()
	s := memory.NewPresenceStore()
	const users = 10_000
	names := make([]domain.Username, users)
	for i := range users {
		id := newLocal(b, fmt.Sprintf("user%d", i)).Identity
		names[i] = id.Name()
		if err := s.Put(ctx, ports.Presence{Identity: id, Endpoints: domain.Endpoints{Link: []string{"10.0.0.1:5001"}}}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("heartbeat", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				p, err := s.Get(ctx, names[i%users])
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Put(ctx, p); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	})
	b.Run("list", func(b *testing.B) {
		for range b.N {
			if l, _ := s.List(ctx); len(l) != users {
				b.Fatal(len(l))
			}
		}
	})
}
