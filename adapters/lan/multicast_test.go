package lan_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/lan"
	"github.com/chatx/chatx/domain"
)

// Two directories on this host's real multicast sockets (IPv4 on the
// loopback interface, which Linux delivers locally) find each other.
func TestRealMulticastOnLoopback(t *testing.T) {
	t.Parallel()
	cfg := lan.Config{Port: 30000 + rand.IntN(20000), Interval: 100 * time.Millisecond}
	a, closeA, err := lan.NewDirectory(cfg, nil)
	if err != nil {
		t.Skipf("SKIP: no multicast socket here: %v", err)
	}
	t.Cleanup(closeA)
	b, closeB, err := lan.NewDirectory(cfg, nil)
	if err != nil {
		t.Fatalf("second directory on a shared port: %v", err)
	}
	t.Cleanup(closeB)
	wa := watch(t, a)
	ctx := context.Background()
	if err := a.Register(ctx, newIdentity(t, "alice"), domain.Endpoints{Link: []string{"127.0.0.1:4000"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, newIdentity(t, "bob"), domain.Endpoints{Link: []string{"127.0.0.1:4001"}, File: []string{"127.0.0.1:4002"}}); err != nil {
		t.Fatal(err)
	}
	p := waitPeer(t, wa, "bob", func(p domain.Peer) bool { return p.Online && len(p.Endpoints.File) > 0 })
	if !slices.Equal(p.Endpoints.Link, []string{"127.0.0.1:4001"}) || !slices.Equal(p.Endpoints.File, []string{"127.0.0.1:4002"}) {
		t.Fatalf("bob at %+v", p.Endpoints)
	}
	closeB()
	p = waitPeer(t, wa, "bob", offline)
	if strings.Join(p.Endpoints.Link, "") != "" {
		t.Fatalf("offline bob keeps endpoints %v", p.Endpoints.Link)
	}
}
