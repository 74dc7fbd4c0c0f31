package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// A directory sending endless distinct names cannot grow the roster past
// its limit: offline peers make room first, then new names are refused.
func TestDiscoverPeersRosterBounded(t *testing.T) {
	w := newWorld(t)
	const limit = 5
	app.SetRosterLimit(w.verify, limit)
	d, err := app.NewDiscoverPeers(w.me, w.dir, w.trust, w.verify, w.events, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	came := make(chan string, 64)
	run(t, func(ctx context.Context) { d.Watch(ctx, func(p domain.Peer) { came <- p.Name().String() }) })
	peers := make([]domain.Peer, limit+3)
	for i := range peers {
		peers[i] = onlinePeer(mkLocal(t, fmt.Sprintf("user%d", i)).Identity)
	}
	send := func(p domain.Peer) { w.dir.events <- ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: p} }
	listed := func() map[string]bool {
		views, err := d.Handle(context.Background(), app.DiscoverPeersInput{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, v := range views {
			out[v.Peer.Name().String()] = v.Peer.Online
		}
		return out
	}
	for _, p := range peers[:limit] {
		send(p)
		if got := <-came; got != p.Name().String() {
			t.Fatalf("came online: %s, want %s", got, p.Name())
		}
	}
	// Full of online peers: a new name is refused, no callback, not listed.
	send(peers[limit])
	offline := peers[0]
	offline.Online = false
	send(offline) // a known name is still updated; it marks a slot free
	waitFor(t, "user0 listed offline", func() bool { on, ok := listed()["user0"]; return ok && !on })
	if l := listed(); len(l) != limit || l[peers[limit].Name().String()] {
		t.Fatalf("roster %v: the name beyond the limit was kept", l)
	}
	// The offline peer makes room for the next new name.
	send(peers[limit+1])
	select {
	case got := <-came:
		if got != peers[limit+1].Name().String() {
			t.Fatalf("came online: %s, want %s", got, peers[limit+1].Name())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a new name was refused although an offline peer could make room")
	}
	l := listed()
	if _, ok := l["user0"]; ok || len(l) != limit {
		t.Fatalf("roster %v: want %d peers with the offline user0 evicted", l, limit)
	}
	// Full of online peers again: refused.
	send(peers[limit+2])
	barrier := peers[1] // a known name going offline: applied after the refused one
	barrier.Online = false
	send(barrier)
	waitFor(t, "user1 listed offline", func() bool { on, ok := listed()["user1"]; return ok && !on })
	select {
	case got := <-came:
		t.Fatalf("online callback for %s while the roster is full", got)
	default:
	}
	if l := listed(); l[peers[limit+2].Name().String()] || len(l) != limit {
		t.Fatalf("roster %v: the name beyond the limit was kept", l)
	}
}
