package tcp_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/tcp"
)

// Senders that pause past the idle gap write their frames themselves,
// between the writer's flushes of the others' frames and of pings and
// pongs every millisecond: each sender's frames still arrive in its
// order, each once.
func TestFramesKeepEachSendersOrderAcrossDirectAndQueuedWrites(t *testing.T) {
	cfg := tcp.Config{HeartbeatInterval: time.Millisecond}
	a := startEnd(t, "alice", acceptAll, cfg)
	b := startEnd(t, "bob", acceptAll, cfg)
	const senders, n = 3, 1500
	var wg sync.WaitGroup
	errs := make(chan error, 2*senders)
	for _, p := range []struct{ from, to end }{{a, b}, {b, a}} {
		for g := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					if i%(g+2) == 0 {
						time.Sleep(250 * time.Microsecond) // idle: the next frame may go direct
					}
					if err := p.from.link.Send(context.Background(), p.to.peer(), chat(fmt.Sprintf("%d:%d", g, i))); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, e := range []end{a, b} {
		got := e.rec.WaitN(t, senders*n)
		next := make([]int, senders)
		for _, r := range got {
			g, i, _ := strings.Cut(r.Env.Body, ":")
			gi, _ := strconv.Atoi(g)
			ii, _ := strconv.Atoi(i)
			if ii != next[gi] {
				t.Fatalf("%s: sender %d's message %d came when %d was due: lost, duplicated or reordered", e.me.Name(), gi, ii, next[gi])
			}
			next[gi]++
		}
	}
}
