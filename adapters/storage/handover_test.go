package storage_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/storage"
)

// While an fsync hangs, no durable write is answered, the committer holds
// at most one committed transaction for the syncer and the writes behind
// it wait in the queue; and Close, called while the fsync hangs, returns
// once the fsyncs end, with every write answered.
func TestDurableWritesWaitForTheirOwnFsyncAcrossTheHandOver(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	s := mustOpen(t, t.TempDir())
	entered := make(chan struct{}, 1)
	gate := make(chan struct{})
	storage.SetSyncForTest(s, func(*os.File) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
		return nil
	})
	const n = 20
	answered := make(chan error, n)
	write := func(i int) {
		go func() {
			answered <- s.SaveOutgoing(ctx, out(t, bob, fmt.Sprint("m", i), t0.Add(time.Duration(i)*time.Second)))
		}()
	}
	write(0)
	<-entered // the first transaction's fsync hangs
	for i := 1; i < n; i++ {
		write(i)
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-answered:
		t.Fatalf("a durable write answered while the fsync hangs: %v", err)
	default:
	}
	if c := s.Stats().Commits; c > 2 {
		t.Fatalf("%d transactions committed during one fsync, want at most the hung one and one behind it", c)
	}
	closed := make(chan struct{})
	go func() { mustClose(t, s); close(closed) }()
	got := 0
	for got < n {
		select {
		case gate <- struct{}{}: // end one fsync
		case err := <-answered:
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			got++
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d writes answered: stuck", got, n)
		}
	}
	for {
		select {
		case <-closed:
			return
		case gate <- struct{}{}:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
	}
}
