package bench_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Knobs, from the environment so `make bench` needs no flags:
// CHATX_BENCH_MSGS (messages per round of the pipelined benchmark, default
// 20,000), CHATX_BENCH_RATE (messages/s of the latency benchmark, default
// 1,000), CHATX_BENCH_SECONDS (its duration, default 5) and
// CHATX_BENCH_STAGES (set: the latency benchmark also logs how long each
// stage of a message's way took, from the clients' debug records).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// msgPair is alice and bob, two real clients (TCP mutual-TLS link, QUIC file
// transport, SQLite profile, downloads on disk) registered with an
// in-process HTTPS registry on loopback, and a tracker of what alice sees.
type msgPair struct {
	alice, bob *app.Client
	bobName    domain.Username
	track      *deliveryTracker
	stop       func()
}

// deliveryTracker records, from alice's event stream, when each of her messages was
// first seen Delivered.
type deliveryTracker struct {
	mu        sync.Mutex
	delivered map[domain.MessageID]time.Time
	changed   chan struct{} // closed and replaced on every Delivered
	count     atomic.Int64
	lost      atomic.Bool // the bus dropped us: counts are incomplete
}

func newDeliveryTracker() *deliveryTracker {
	return &deliveryTracker{delivered: make(map[domain.MessageID]time.Time), changed: make(chan struct{})}
}

func (t *deliveryTracker) follow(events <-chan ports.Event) {
	for ev := range events {
		e, ok := ev.(ports.MessageStateEvent)
		if !ok || e.State != domain.MessageDelivered {
			continue
		}
		now := time.Now()
		t.mu.Lock()
		if _, seen := t.delivered[e.ID]; !seen {
			t.delivered[e.ID] = now
			t.count.Add(1)
			close(t.changed)
			t.changed = make(chan struct{})
		}
		t.mu.Unlock()
	}
	t.lost.Store(true)
	t.mu.Lock()
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
}

// waitCount waits until n messages were delivered in all.
func (t *deliveryTracker) waitCount(tb testing.TB, n int64, timeout time.Duration) {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		t.mu.Lock()
		ch := t.changed
		t.mu.Unlock()
		if t.lost.Load() {
			tb.Fatal("alice's event stream was dropped by the bus")
		}
		if t.count.Load() >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			tb.Fatalf("only %d of %d messages delivered within %s", t.count.Load(), n, timeout)
		}
	}
}

func (t *deliveryTracker) at(id domain.MessageID) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.delivered[id]
	return at, ok
}

// newMsgPair starts the registry and both clients in b.TempDir() and waits
// until a first message from alice was delivered to bob.
func newMsgPair(tb testing.TB) *msgPair { return newMsgPairLogged(tb, nil) }

// newMsgPairLogged is newMsgPair with both clients logging to h (nil: the
// cluster's logger).
func newMsgPairLogged(tb testing.TB, h slog.Handler) *msgPair {
	tb.Helper()
	c := newCluster(tb, tb.TempDir())
	start := func(name string) *app.Client {
		if h == nil {
			return c.start(name, app.Options{})
		}
		return c.startLogged(name, app.Options{}, slog.New(h).With("client", name))
	}
	p := &msgPair{alice: start("alice"), bob: start("bob"),
		bobName: domain.MustUsername("bob"), track: newDeliveryTracker(), stop: c.stop}
	go p.track.follow(p.alice.Subscribe(c.ctx))
	// Contacts both ways, as people who write this much are (a stranger's
	// messages would wait as a request).
	c.addContact(p.bob, domain.MustUsername("alice"))
	c.firstSend(p.alice, p.bobName)
	p.track.waitCount(tb, 1, 30*time.Second)
	return p
}

// BenchmarkMessagingPipelined measures sustained messages/s alice → bob
// with persistence on: CHATX_BENCH_MSGS messages per round, issued by
// `senders` goroutines calling Client.Send (durable in alice's outbox when
// it returns), each counted only when alice has seen it Delivered (bob
// stored it durably and acknowledged it).
func BenchmarkMessagingPipelined(b *testing.B) {
	msgs := envInt("CHATX_BENCH_MSGS", 20_000)
	for _, senders := range []int{1, 256} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			p := newMsgPair(b)
			defer p.stop()
			ctx := context.Background()
			total := 0
			var elapsed, issuing time.Duration
			probe := startFsyncProbe(b, b.TempDir())
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				base := p.track.count.Load()
				started := time.Now()
				var next atomic.Int64
				var wg sync.WaitGroup
				var errOnce sync.Once
				var sendErr error
				for range senders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(msgs) {
							if _, err := p.alice.Send(ctx, p.bobName, "benchmark message of a realistic length, about sixty bytes"); err != nil {
								errOnce.Do(func() { sendErr = err })
								return
							}
						}
					}()
				}
				wg.Wait()
				issuing += time.Since(started)
				if sendErr != nil {
					b.Fatalf("send: %v", sendErr)
				}
				p.track.waitCount(b, base+int64(msgs), 10*time.Minute)
				elapsed += time.Since(started)
				total += msgs
			}
			b.StopTimer()
			reportCPU(b, cpuTime()-cpu0, total)
			b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
			// How fast Send returned (durable in the outbox): the rate the
			// senders could issue, whatever the delivery behind it.
			b.ReportMetric(float64(total)/issuing.Seconds(), "sent/s")
			reportFsync(b, probe.stop())
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkMessagingLatency measures send→delivered latency at a steady
// rate: CHATX_BENCH_RATE messages/s for CHATX_BENCH_SECONDS, message i
// issued at start + i/rate in its own goroutine, from the Send call to
// alice's Delivered event. It reports p50, p99 and max in ms and the
// achieved rate.
func BenchmarkMessagingLatency(b *testing.B) {
	rate := envInt("CHATX_BENCH_RATE", 1_000)
	seconds := envInt("CHATX_BENCH_SECONDS", 5)
	n := rate * seconds
	var rec *stageRecorder
	var h slog.Handler
	if os.Getenv("CHATX_BENCH_STAGES") != "" {
		// The use-cases log through log/slog's default logger.
		rec = &stageRecorder{}
		h = rec
		prev := slog.Default()
		slog.SetDefault(slog.New(rec))
		defer slog.SetDefault(prev)
	}
	p := newMsgPairLogged(b, h)
	defer p.stop()
	times := make(map[domain.MessageID][2]time.Time)
	ctx := context.Background()
	var lat, inSend []time.Duration
	var elapsed time.Duration
	probe := startFsyncProbe(b, b.TempDir())
	b.ResetTimer()
	for range b.N {
		base := p.track.count.Load()
		type sent struct {
			id   domain.MessageID
			at   time.Time
			took time.Duration // in Send: durable in alice's outbox
		}
		out := make([]sent, n)
		var wg sync.WaitGroup
		var failed atomic.Int64
		var firstErr atomic.Value
		interval := time.Second / time.Duration(rate)
		started := time.Now()
		for i := range n {
			if d := time.Until(started.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				at := time.Now()
				m, err := p.alice.Send(ctx, p.bobName, "latency probe "+strconv.Itoa(i))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					return
				}
				out[i] = sent{id: m.ID(), at: at, took: time.Since(at)}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			b.Fatalf("%d sends failed: %v", failed.Load(), firstErr.Load())
		}
		p.track.waitCount(b, base+int64(n), 5*time.Minute)
		elapsed += time.Since(started)
		for _, s := range out {
			at, ok := p.track.at(s.id)
			if !ok {
				b.Fatal(errors.New("a message counted as delivered has no time"))
			}
			lat = append(lat, at.Sub(s.at))
			inSend = append(inSend, s.took)
			times[s.id] = [2]time.Time{s.at, at}
		}
	}
	b.StopTimer()
	if rec != nil {
		// Printed, not logged: the testing package cuts a benchmark's log.
		fmt.Printf("where the time went, %d messages at %d/s:\n%s", n, rate, stageBreakdown(rec, times))
	}
	q := quantileMs
	b.ReportMetric(q(lat, 0.50), "p50-ms")
	b.ReportMetric(q(lat, 0.99), "p99-ms")
	// The part of the latency spent in Send (alice's durable outbox write).
	b.ReportMetric(q(inSend, 0.50), "send-p50-ms")
	b.ReportMetric(q(inSend, 0.99), "send-p99-ms")
	reportFsync(b, probe.stop())
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(0, "ns/op")
}

// TestMain silences the use-cases' default logger (they log through
// log/slog's default), so benchmark output is only figures.
func TestMain(m *testing.M) {
	if os.Getenv("CHATX_BENCH_LOG") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	os.Exit(m.Run())
}

// fsyncProbe measures the disk while a benchmark runs: every 20 ms it
// writes 4 KiB to a file in the benchmark's temporary directory (the disk
// the profiles are on) and fdatasyncs it, recording how long that took.
type fsyncProbe struct {
	done chan struct{}
	out  chan []time.Duration
}

func startFsyncProbe(tb testing.TB, dir string) *fsyncProbe {
	tb.Helper()
	f, err := os.Create(filepath.Join(dir, "fsync-probe"))
	if err != nil {
		tb.Fatal(err)
	}
	p := &fsyncProbe{done: make(chan struct{}), out: make(chan []time.Duration, 1)}
	go func() {
		defer f.Close()
		var ds []time.Duration
		buf := make([]byte, 4096)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.done:
				p.out <- ds
				return
			case <-tick.C:
			}
			start := time.Now()
			if _, err := f.WriteAt(buf, 0); err != nil {
				continue
			}
			if err := f.Sync(); err != nil {
				continue
			}
			ds = append(ds, time.Since(start))
		}
	}()
	return p
}

// stop ends the probe and returns what it measured.
func (p *fsyncProbe) stop() []time.Duration {
	close(p.done)
	return <-p.out
}

// quantileMs is the f-quantile of ds (sorted in place) in milliseconds.
func quantileMs(ds []time.Duration, f float64) float64 {
	slices.Sort(ds)
	return float64(ds[min(len(ds)-1, int(f*float64(len(ds))))].Microseconds()) / 1000
}

// cpuTime is this process's user + system CPU time so far: both clients,
// the registry and the benchmark's own goroutines.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per message of a timed section (the
// steadier figure on a shared machine: it does not count waiting for
// the disk or for other processes).
func reportCPU(b *testing.B, cpu time.Duration, msgs int) {
	if msgs > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(msgs), "cpu-µs/msg")
	}
}

// reportFsync reports what the disk probe saw during the benchmark.
func reportFsync(b *testing.B, fs []time.Duration) {
	if len(fs) == 0 {
		return
	}
	b.ReportMetric(quantileMs(fs, 0.50), "fsync-p50-ms")
	b.ReportMetric(quantileMs(fs, 0.99), "fsync-p99-ms")
}
