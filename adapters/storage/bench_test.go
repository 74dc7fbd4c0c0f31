package storage_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Benchmarks of the store on the real file system, every write durable
// when it returns. Run with:
//
//	go test -run '^$' -bench . -benchtime 3x ./adapters/storage/
//
// One iteration (b.N counts them) is a round of perRound(c) writes from c
// callers at once, so even -benchtime 1x (make bench) measures thousands of
// writes. callers-1 is one caller waiting for each write (one fsync per
// write); callers-N is N callers at once, the way a link with N messages in
// flight uses the store, so the writer's group commit shares the fsyncs.
// The figure to read is msgs/s (or moves/s); ns/op is per round.

func benchStore(b *testing.B) *storage.Store {
	b.Helper()
	s, cleanup, err := storage.Open(storage.ProfileDir(b.TempDir()), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cleanup)
	return s
}

// perRound is the number of writes of one iteration with c callers: enough
// to keep every caller busy for a while, few enough that the serial case
// takes well under a second.
func perRound(c int) int { return min(max(20*c, 200), 40_000) }

// cpuTime is this process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportRate(b *testing.B, s *storage.Store, n int, what string) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), what+"/s")
	if st := s.Stats(); st.Syncs > 0 {
		b.ReportMetric(float64(st.SyncTime.Microseconds())/float64(st.Syncs), "µs/fsync")
	}
	if st := s.Stats(); st.Commits > 0 {
		b.ReportMetric(float64(st.Writes)/float64(st.Commits), "writes/commit")
		b.ReportMetric(float64(st.Writes)/float64(st.Syncs), "writes/fsync")
	}
}

// concurrencies are the numbers of callers the parallel benchmarks run.
var concurrencies = []int{1, 16, 256, 1024, 4096}

// runConcurrent calls op(i) for i in [0, n) from c goroutines.
func runConcurrent(b *testing.B, n, c int, op func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
}

func outgoingBatch(b *testing.B, n int, body string) []domain.Message {
	b.Helper()
	ms := make([]domain.Message, n)
	for i := range ms {
		ms[i] = out(b, bob, body, t0.Add(time.Duration(i)*time.Microsecond))
	}
	return ms
}

const benchBody = "a typical chat message of about sixty bytes, give or take"

func BenchmarkSaveOutgoing(b *testing.B) {
	for _, c := range concurrencies {
		b.Run(fmt.Sprintf("callers-%d", c), func(b *testing.B) {
			ctx, s, n := ctxFor(b), benchStore(b), b.N*perRound(c)
			ms := outgoingBatch(b, n, benchBody)
			b.ResetTimer()
			cpu0 := cpuTime()
			runConcurrent(b, n, c, func(i int) error { return s.SaveOutgoing(ctx, ms[i]) })
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(n), "cpu-µs/msg")
			b.StopTimer()
			reportRate(b, s, n, "msgs")
		})
	}
}

func BenchmarkSaveIncoming(b *testing.B) {
	for _, c := range concurrencies {
		b.Run(fmt.Sprintf("callers-%d", c), func(b *testing.B) {
			ctx, s, n := ctxFor(b), benchStore(b), b.N*perRound(c)
			ms := make([]domain.Message, n)
			for i := range ms {
				ms[i] = in(b, bob, benchBody, t0.Add(time.Duration(i)*time.Microsecond))
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			defer func() { b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(n), "cpu-µs/msg") }()
			runConcurrent(b, n, c, func(i int) error {
				isNew, err := s.SaveIncoming(ctx, ms[i])
				if err == nil && !isNew {
					err = fmt.Errorf("message %d reported as a duplicate", i)
				}
				return err
			})
			b.StopTimer()
			reportRate(b, s, n, "msgs")
		})
	}
}

func BenchmarkSetState(b *testing.B) {
	for _, c := range concurrencies {
		b.Run(fmt.Sprintf("callers-%d", c), func(b *testing.B) {
			ctx, s, n := ctxFor(b), benchStore(b), b.N*perRound(c)
			ms := outgoingBatch(b, n, benchBody)
			runConcurrent(b, n, 1024, func(i int) error { return s.SaveOutgoing(ctx, ms[i]) })
			before := s.Stats()
			b.ResetTimer()
			runConcurrent(b, n, c, func(i int) error {
				_, err := s.SetState(ctx, ms[i].ID(), domain.MessageDelivered)
				return err
			})
			b.StopTimer()
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "moves/s")
			st := s.Stats()
			b.ReportMetric(float64(st.Writes-before.Writes)/float64(st.Commits-before.Commits), "writes/commit")
			b.ReportMetric(float64(st.Writes-before.Writes)/float64(st.Syncs-before.Syncs), "writes/fsync")
			b.ReportMetric(float64((st.SyncTime-before.SyncTime).Microseconds())/float64(st.Syncs-before.Syncs), "µs/fsync")
		})
	}
}

// BenchmarkMessageLifecycle is the persistence of one chat message end to
// end with c messages in flight: the sender saves it, the receiver saves it
// (in its own profile), the sender records the delivery. Its msgs/s is the
// ceiling persistence puts on a link.
func BenchmarkMessageLifecycle(b *testing.B) {
	for _, c := range []int{16, 256, 1024, 4096} {
		b.Run(fmt.Sprintf("in-flight-%d", c), func(b *testing.B) {
			ctx, sender, receiver, n := ctxFor(b), benchStore(b), benchStore(b), b.N*perRound(c)
			ms := outgoingBatch(b, n, benchBody)
			b.ResetTimer()
			runConcurrent(b, n, c, func(i int) error {
				m := ms[i]
				if err := sender.SaveOutgoing(ctx, m); err != nil {
					return err
				}
				got, err := domain.NewIncomingMessage(m.ID(), m.From(), m.To(), m.SentAt(), m.Body())
				if err != nil {
					return err
				}
				if _, err := receiver.SaveIncoming(ctx, got); err != nil {
					return err
				}
				_, err = sender.SetState(ctx, m.ID(), domain.MessageDelivered)
				return err
			})
			b.StopTimer()
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
			for _, s := range []*storage.Store{sender, receiver} {
				st := s.Stats()
				b.ReportMetric(float64(st.SyncTime.Microseconds())/float64(st.Syncs), "µs/fsync")
			}
		})
	}
}

// BenchmarkMarkStates is the applier's work for delivered messages: marks
// in batches of `batch` (the app's applier takes up to 1,024), four
// batches at once, each one lazy MarkStates. cpu-µs/mark is the figure.
func BenchmarkMarkStates(b *testing.B) {
	for _, batch := range []int{64, 1024} {
		b.Run(fmt.Sprintf("batch-%d", batch), func(b *testing.B) {
			ctx, s, n := ctxFor(b), benchStore(b), b.N*40_000
			ms := outgoingBatch(b, n, benchBody)
			runConcurrent(b, n, 1024, func(i int) error { return s.SaveOutgoing(ctx, ms[i]) })
			b.ResetTimer()
			cpu0 := cpuTime()
			runConcurrent(b, (n+batch-1)/batch, 4, func(i int) error {
				marks := make([]ports.StateMark, 0, batch)
				for _, m := range ms[i*batch : min(n, (i+1)*batch)] {
					marks = append(marks, ports.StateMark{ID: m.ID(), State: domain.MessageDelivered})
				}
				moved, err := s.MarkStates(ctx, marks)
				if err == nil && len(moved) != len(marks) {
					err = fmt.Errorf("%d of %d marks moved", len(moved), len(marks))
				}
				return err
			})
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(n), "cpu-µs/mark")
			b.StopTimer()
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "marks/s")
		})
	}
}
