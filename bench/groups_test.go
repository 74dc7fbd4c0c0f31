package bench_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// BenchmarkGroupFanout measures group messages/s from one member to a
// group of 10 and of 50 clients in this process: "memory", clients built by
// chatx.InitMemoryClient (in-memory network, registry and stores), and
// "tcp", whole clients as the binary builds them (TCP mutual-TLS links on
// loopback, SQLite profiles, the HTTPS registry). The sender issues
// CHATX_BENCH_GROUP_MSGS messages (default 200) from 32 goroutines, and a message
// counts once every other member has acknowledged it (stored it).
// copies/s is the per-member deliveries behind it.
func BenchmarkGroupFanout(b *testing.B) {
	msgs := envInt("CHATX_BENCH_GROUP_MSGS", 200)
	for _, kind := range []string{"memory", "tcp"} {
		for _, members := range []int{10, 50} {
			b.Run(fmt.Sprintf("%s/members=%d", kind, members), func(b *testing.B) {
				c := newCluster(b, b.TempDir())
				defer c.stop()
				start := c.start
				if kind == "memory" {
					start = memoryStarter(b, c)
				}
				benchGroup(b, c, start, members, msgs)
			})
		}
	}
}

// memoryStarter starts clients on one in-memory network and registry,
// stopped with c.
func memoryStarter(b *testing.B, c *cluster) func(string, app.Options) *app.Client {
	net := memory.NewNetwork()
	reg, err := app.NewRegistry(memory.NewAccountStore(), memory.NewPresenceStore(), memory.NewRealClock(), app.RegistryOptions{})
	if err != nil {
		b.Fatal(err)
	}
	regCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = reg.Run(regCtx) }()
	c.cleanups = append(c.cleanups, func() { stop(); <-done })
	return func(name string, opts app.Options) *app.Client {
		client, cleanup, err := chatx.InitMemoryClient(net, reg, newIdentity(b, name), memory.DirectoryConfig{}, opts)
		if err != nil {
			c.fail("client %s: %v", name, err)
		}
		c.cleanups = append(c.cleanups, cleanup)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_ = client.Run(c.ctx)
		}()
		return client
	}
}

func benchGroup(b *testing.B, c *cluster, start func(string, app.Options) *app.Client, members, msgs int) {
	clients := make([]*app.Client, members)
	var names []domain.Username
	for i := range clients {
		name := fmt.Sprintf("member%02d", i)
		clients[i] = start(name, app.Options{})
		if i > 0 {
			names = append(names, domain.MustUsername(name))
		}
	}
	var delivered atomic.Int64
	events := clients[0].Subscribe(c.ctx)
	go func() {
		for ev := range events {
			if e, ok := ev.(ports.GroupDeliveryEvent); ok && e.State == domain.MessageDelivered {
				delivered.Add(1)
			}
		}
	}()
	// Only a contact brings one into a group: every member has the
	// creator as a contact, as people invited to a group do.
	for _, cl := range clients[1:] {
		c.addContact(cl, domain.MustUsername("member00"))
	}
	// Every member must be online (known to the registry) to be added.
	var g domain.Group
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var err error
		if g, err = clients[0].CreateGroup(c.ctx, "bench", names); err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.fail("create group: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitFor(b, c, 2*time.Minute, "every member knows the group", func() bool {
		for _, cl := range clients[1:] {
			if v, err := cl.GroupInfo(c.ctx, g.ID()); err != nil || v.Group.Epoch() != g.Epoch() {
				return false
			}
		}
		return true
	})
	copies := int64(members - 1)
	b.ResetTimer()
	var elapsed time.Duration
	total := 0
	for range b.N {
		base := delivered.Load()
		start := time.Now()
		// 32 goroutines issue them, as the JSON-RPC front does for a
		// script that does not wait: each SendGroup waits for its own
		// durable commit, and concurrent ones share one.
		var next atomic.Int64
		var wg sync.WaitGroup
		var sendErr atomic.Value
		for range 32 {
			wg.Go(func() {
				for i := next.Add(1); i <= int64(msgs); i = next.Add(1) {
					if _, err := clients[0].SendGroup(context.Background(), g.ID(), fmt.Sprintf("group benchmark message %d of a realistic length", i)); err != nil {
						sendErr.Store(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err, ok := sendErr.Load().(error); ok {
			c.fail("send: %v", err)
		}
		waitFor(b, c, 10*time.Minute, "every copy acknowledged", func() bool { return delivered.Load() >= base+int64(msgs)*copies })
		elapsed += time.Since(start)
		total += msgs
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(total)*float64(copies)/elapsed.Seconds(), "copies/s")
	b.ReportMetric(0, "ns/op")
}

func waitFor(tb testing.TB, c *cluster, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.fail("timed out: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
