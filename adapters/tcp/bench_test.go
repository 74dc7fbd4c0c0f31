package tcp_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Link-only figures: no persistence on either side (adapters/storage is
// measured separately; bench/results-messaging.md combines them).

type handlerFunc func(ctx context.Context, from domain.Identity, env ports.Envelope) error

func (f handlerFunc) HandleEnvelope(ctx context.Context, from domain.Identity, env ports.Envelope) error {
	return f(ctx, from, env)
}

// BenchmarkPipelined: one goroutine sends b.N chats of 100 bytes as fast as
// Send returns; the clock stops when the receiver's handler has them all.
func BenchmarkPipelined(b *testing.B) {
	var got atomic.Int64
	all := make(chan struct{})
	var want atomic.Int64
	want.Store(-1)
	recv := startEndWith(b, "bob", acceptAll, tcp.Config{}, handlerFunc(func(context.Context, domain.Identity, ports.Envelope) error {
		if got.Add(1) == want.Load() {
			close(all)
		}
		return nil
	}))
	send := startEnd(b, "alice", acceptAll, tcp.Config{})
	body := strings.Repeat("m", 100)
	ctx := context.Background()
	if err := send.link.Send(ctx, recv.peer(), chat(body)); err != nil { // link up before the clock starts
		b.Fatal(err)
	}
	for got.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	want.Store(int64(b.N) + 1)
	env := chat(body)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := send.link.Send(ctx, recv.peer(), env); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(time.Minute):
		b.Fatalf("received %d of %d", got.Load()-1, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkSendToDelivered: chats paced at 1,000 per second; the latency of
// each is from Send until the sender's handler gets the KindDelivered the
// receiver's handler sent back. Run with -benchtime=3000x.
func BenchmarkSendToDelivered(b *testing.B) {
	var mu sync.Mutex
	sentAt := make(map[domain.MessageID]time.Time)
	lat := make([]time.Duration, 0, b.N)
	acked := make(chan struct{}, b.N+1)
	sender := startEndWith(b, "alice", acceptAll, tcp.Config{}, handlerFunc(func(_ context.Context, _ domain.Identity, env ports.Envelope) error {
		if env.Kind != ports.KindDelivered {
			return nil
		}
		now := time.Now()
		mu.Lock()
		if t0, ok := sentAt[env.MessageID]; ok {
			lat = append(lat, now.Sub(t0))
		}
		mu.Unlock()
		acked <- struct{}{}
		return nil
	}))
	var receiver end
	receiver = startEndWith(b, "bob", acceptAll, tcp.Config{}, handlerFunc(func(ctx context.Context, _ domain.Identity, env ports.Envelope) error {
		return receiver.link.Send(ctx, sender.peer(), ports.Envelope{Kind: ports.KindDelivered, MessageID: env.MessageID})
	}))
	ctx := context.Background()
	if err := sender.link.Send(ctx, receiver.peer(), chat("warm-up")); err != nil {
		b.Fatal(err)
	}
	<-acked
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for range b.N {
		<-tick.C
		env := chat("ping")
		mu.Lock()
		sentAt[env.MessageID] = time.Now()
		mu.Unlock()
		if err := sender.link.Send(ctx, receiver.peer(), env); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		select {
		case <-acked:
		case <-time.After(time.Minute):
			b.Fatal("acknowledgements missing")
		}
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}
