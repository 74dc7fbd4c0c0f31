package registry_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
)

// A client given a dead node first and a live one second registers at the
// live one, and the pin of each URL is its own: a URL whose pin does not
// match its node is refused there and the client moves on.
func TestClientSkipsADeadNode(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	other := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there now
	pin := strings.SplitN(string(ts.url), "#", 2)[1]
	wrongPin := strings.SplitN(string(other.url), "#", 2)[1]
	otherHost := strings.TrimPrefix(strings.SplitN(string(other.url), "/#", 2)[0], "https://")
	urls := "https://" + dead + "/#" + pin + ", https://" + otherHost + "/#" + wrongPin[:7] + flip(wrongPin[7:9]) + wrongPin[9:] + "," + string(ts.url)
	c := newClient(t, registry.RegistryURL(urls), "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Register(ctx, newLocal(t, "alice"), domain.Endpoints{}); err != nil {
		t.Fatalf("register with a dead node and a wrongly pinned one first: %v", err)
	}
	want := strings.TrimPrefix(strings.SplitN(string(ts.url), "/#", 2)[0], "https://")
	if c.Node() != want {
		t.Fatalf("client on %s, want %s", c.Node(), want)
	}
	p, err := c.Lookup(ctx, domain.MustUsername("alice"))
	if err != nil || !p.Online {
		t.Fatalf("lookup: %+v %v", p, err)
	}
	if st, _ := other.svc.Stats(ctx); st.Registered != 0 {
		t.Fatal("the node with the wrong pin got the registration")
	}
}

// flip changes two hex digits into others.
func flip(h string) string {
	if h == "00" {
		return "11"
	}
	return "00"
}
