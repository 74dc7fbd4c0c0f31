package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func TestEventRecorderWaits(t *testing.T) {
	r := memory.NewEventRecorder()
	r.Publish(ports.TypingEvent{From: domain.MustUsername("bob")})

	var wg sync.WaitGroup
	var got ports.DirectoryStatusEvent
	var err error
	wg.Go(func() {
		got, err = memory.WaitForEvent(r, wait, func(e ports.DirectoryStatusEvent) bool { return e.Connected })
	})
	for i := range 3 {
		r.Publish(ports.DirectoryStatusEvent{Connected: i == 2})
	}
	wg.Wait()
	if err != nil || !got.Connected {
		t.Fatalf("WaitForEvent: %+v, %v", got, err)
	}
	if _, err := memory.WaitForEvent[ports.TypingEvent](r, wait, nil); err != nil {
		t.Fatalf("a past event was not found: %v", err)
	}
	if _, _, err := r.WaitFrom(r.Len(), 10*time.Millisecond, func(ports.Event) bool { return true }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a later event that never comes: %v", err)
	}
	if len(r.Events()) != 4 {
		t.Fatalf("recorded %d events, want 4", len(r.Events()))
	}
}
