package tcp_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// Every goroutine of a link stops with Serve's context and the cleanup.
func TestNoGoroutineOutlivesTheLink(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		bobID := newIdentity(t, "bob")
		a, cleanupA, err := tcp.NewLink(newIdentity(t, "alice"), acceptAll, nil, tcp.Config{ListenAddr: "127.0.0.1:0"}, quietLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer cleanupA()
		b, cleanupB, err := tcp.NewLink(bobID, acceptAll, nil, tcp.Config{ListenAddr: "127.0.0.1:0"}, quietLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer cleanupB()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rb := &contract.LinkRecorder{}
		served := make(chan error, 1)
		go func() { served <- b.Serve(ctx, rb) }()
		bob := domain.Peer{Identity: bobID.Identity, Endpoints: domain.Endpoints{Link: b.Endpoints()}}
		if err := a.Send(ctx, bob, chat("hi")); err != nil {
			t.Fatal(err)
		}
		rb.WaitN(t, 1)
		cancel()
		if err := <-served; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if err := b.Serve(context.Background(), rb); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve after shutdown: %v, want net.ErrClosed", err)
		}
		cleanupA()
		if err := a.Send(context.Background(), bob, chat("late")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Send after cleanup: %v, want net.ErrClosed", err)
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSendRefusesBadInput(t *testing.T) {
	me := newIdentity(t, "alice")
	l, cleanup, err := tcp.NewLink(me, acceptAll, nil, tcp.Config{ListenAddr: "127.0.0.1:0"}, quietLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	bob := domain.Peer{Identity: newIdentity(t, "bob").Identity, Endpoints: domain.Endpoints{Link: []string{"127.0.0.1:1"}}}
	tests := []struct {
		name string
		to   domain.Peer
		env  ports.Envelope
	}{
		{"peer without identity", domain.Peer{}, chat("x")},
		{"our own key", domain.Peer{Identity: me.Identity, Endpoints: domain.Endpoints{Link: l.Endpoints()}}, chat("x")},
		{"body over 64 KiB", bob, chat(string(make([]byte, domain.MaxMessageBytes+1)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Send(testCtx(t), tt.to, tt.env); err == nil {
				t.Fatal("nil error")
			}
		})
	}
	if _, _, err := tcp.NewLink(domain.LocalIdentity{}, acceptAll, nil, tcp.Config{}, nil); err == nil {
		t.Error("NewLink without identity: nil error")
	}
	if _, _, err := tcp.NewLink(me, nil, nil, tcp.Config{}, nil); err == nil {
		t.Error("NewLink without verifier: nil error")
	}
}
