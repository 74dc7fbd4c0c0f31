package app_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func progressTick(t *testing.T, id domain.TransferID, done int64) ports.Event {
	t.Helper()
	m := domain.Manifest{Name: "f", Files: []domain.FileEntry{{Path: "f", Size: 1 << 30}}}
	tr, err := domain.NewTransfer(id, domain.MustUsername("bob"), domain.Outgoing, m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Accept(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(done, time.Now()); err != nil {
		t.Fatal(err)
	}
	return ports.TransferEvent{Transfer: tr}
}

func TestBusSlowSubscriberLosesTicksNotMessages(t *testing.T) {
	bus := app.NewBus()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := bus.Subscribe(ctx)
	id := domain.NewTransferID()
	const messages = 2000
	// Nobody reads while everything is published.
	for i := range messages {
		bus.Publish(ports.TypingEvent{From: domain.MustUsername("bob")})
		bus.Publish(progressTick(t, id, int64(i)))
	}
	bus.Publish(ports.DirectoryStatusEvent{Connected: true})
	var typing, ticks int
	var lastTick int64 = -1
	for {
		e := <-ch
		switch ev := e.(type) {
		case ports.TypingEvent:
			typing++
		case ports.TransferEvent:
			ticks++
			if ev.Transfer.Done() <= lastTick {
				t.Fatalf("progress went back from %d to %d", lastTick, ev.Transfer.Done())
			}
			lastTick = ev.Transfer.Done()
		case ports.DirectoryStatusEvent:
			if typing != messages {
				t.Fatalf("%d of %d non-progress events arrived", typing, messages)
			}
			if ticks >= messages {
				t.Fatalf("no progress tick was coalesced or dropped (%d)", ticks)
			}
			if lastTick != messages-1 {
				t.Fatalf("the newest tick is lost: last %d", lastTick)
			}
			return
		}
	}
}

func TestBusKeepsOrderAndClosesOnCancel(t *testing.T) {
	bus := app.NewBus()
	ctx, cancel := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	a, b := bus.Subscribe(ctx), bus.Subscribe(ctxB)
	for i := range 100 {
		bus.Publish(ports.MessageStateEvent{State: domain.MessageState(i)})
	}
	for _, ch := range []<-chan ports.Event{a, b} {
		for i := range 100 {
			e := (<-ch).(ports.MessageStateEvent)
			if int(e.State) != i {
				t.Fatalf("event %d arrived as %d", i, e.State)
			}
		}
	}
	cancel()
	select {
	case _, ok := <-a:
		if ok {
			t.Fatal("event after cancel")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
}

// A subscriber that keeps up at times and falls behind at others gets its
// events now from Publish itself, now from its pump: every one, in order.
// Subscribers cancelled, or dropped for not reading, while events are
// published see their channel closed, and Publish never sends on it after.
func TestBusKeepsOrderAcrossDirectAndQueuedHandOffs(t *testing.T) {
	bus := app.NewBus()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := bus.Subscribe(ctx)
	const n = 50000
	var read atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			for int64(i)-read.Load() > 4096 { // within the backlog: never dropped
				time.Sleep(100 * time.Microsecond)
			}
			bus.Publish(ports.MessageStateEvent{State: domain.MessageState(i)})
			if i%1000 == 0 {
				time.Sleep(time.Millisecond) // let the reader catch up: direct sends again
			}
		}
	}()
	go func() { // subscribers that come and go meanwhile
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			c, stop := context.WithCancel(ctx)
			sub := bus.Subscribe(c)
			if i%2 == 0 {
				<-sub
				stop()
			}
			for range sub { // the odd ones are dropped at the backlog, or cancelled below
				if i%2 == 1 {
					stop()
				}
			}
			stop()
		}
	}()
	for i := range n {
		e, ok := <-ch
		if !ok {
			t.Fatalf("closed at event %d", i)
		}
		if got := int(e.(ports.MessageStateEvent).State); got != i {
			t.Fatalf("event %d arrived as %d", i, got)
		}
		read.Store(int64(i))
		if i%97 == 0 {
			time.Sleep(50 * time.Microsecond) // fall behind a little
		}
	}
	<-done
}
