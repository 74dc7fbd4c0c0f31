package app_test

import (
	"context"
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
