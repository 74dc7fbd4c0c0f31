package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// TestIdleStreamOutlivesWriteTimeout: a presence stream with nothing to say
// stays open for longer than the stream write timeout. (Over HTTP/2 a write
// deadline left armed after a flush resets the stream when it passes, which
// logged every client out between two pings.)
func TestIdleStreamOutlivesWriteTimeout(t *testing.T) {
	cfg := fastConfig(t.TempDir(), "")
	cfg.StreamWriteTimeout = 200 * time.Millisecond
	cfg.StreamPing = time.Minute
	ts := startServer(t, cfg, app.RegistryOptions{})
	c := newClient(t, ts.url, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Register(ctx, newLocal(t, "alice"), domain.Endpoints{Link: []string{"127.0.0.1:4000"}, File: []string{"127.0.0.1:4001"}}); err != nil {
		t.Fatal(err)
	}
	ev, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitPresence(t, ev, "alice", true, 10*time.Second)
	quiet := time.NewTimer(10 * cfg.StreamWriteTimeout)
	defer quiet.Stop()
	for {
		select {
		case e := <-ev:
			if e.Kind == ports.Disconnected || (e.Kind == ports.PeerChanged && !e.Peer.Online) {
				t.Fatalf("idle stream ended: %+v", e)
			}
		case <-quiet.C:
			if !isOnline(ctx, ts.svc, "alice") {
				t.Fatal("alice went offline while idle")
			}
			return
		}
	}
}
