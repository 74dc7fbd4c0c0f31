package lan_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/lan"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// hub is an in-process link: every datagram one member sends reaches every
// member (itself included, as multicast loopback does).
type hub struct {
	mu      sync.Mutex
	members []*hubConn
	sent    [][]byte // every datagram, for replay tests
}

type hubConn struct {
	h     *hub
	ifc   lan.Interface
	queue chan lan.Received
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	muted bool // sends are dropped: a peer that vanished without goodbye
}

func (h *hub) join(addr string) *hubConn {
	c := &hubConn{h: h, queue: make(chan lan.Received, 1024), done: make(chan struct{}),
		ifc: lan.Interface{Name: "lan0", Index: 2, Addrs: []netip.Addr{netip.MustParseAddr(addr)}}}
	h.mu.Lock()
	h.members = append(h.members, c)
	h.mu.Unlock()
	return c
}

// inject delivers b to every member as if sent from src.
func (h *hub) inject(b []byte, src netip.Addr) {
	h.mu.Lock()
	members := append([]*hubConn(nil), h.members...)
	h.mu.Unlock()
	for _, m := range members {
		select {
		case m.queue <- lan.Received{Data: append([]byte(nil), b...), Src: src, Via: m.ifc}:
		case <-m.done:
		}
	}
}

func (h *hub) packets() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.sent...)
}

func (c *hubConn) Interfaces() ([]lan.Interface, error) { return []lan.Interface{c.ifc}, nil }

func (c *hubConn) Send(b []byte, _ lan.Interface) error {
	c.mu.Lock()
	muted := c.muted
	c.mu.Unlock()
	if muted {
		return nil
	}
	c.h.mu.Lock()
	c.h.sent = append(c.h.sent, append([]byte(nil), b...))
	c.h.mu.Unlock()
	c.h.inject(b, c.ifc.Addrs[0])
	return nil
}

func (c *hubConn) mute() {
	c.mu.Lock()
	c.muted = true
	c.mu.Unlock()
}

func (c *hubConn) Receive(ctx context.Context) (lan.Received, error) {
	select {
	case r := <-c.queue:
		return r, nil
	case <-c.done:
		return lan.Received{}, net.ErrClosed
	case <-ctx.Done():
		return lan.Received{}, ctx.Err()
	}
}

func (c *hubConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func newIdentity(t testing.TB, name string) domain.LocalIdentity {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := domain.ParseUsername(name)
	if err != nil {
		t.Fatal(err)
	}
	me, err := domain.NewLocalIdentity(u, priv)
	if err != nil {
		t.Fatal(err)
	}
	return me
}

// fastConfig announces often so tests do not wait for the real interval.
func fastConfig() lan.Config {
	return lan.Config{Interval: 50 * time.Millisecond, Expiry: 300 * time.Millisecond, SourceRate: 1000, SourceBurst: 1000}
}

func newDir(t *testing.T, h *hub, addr string, cfg lan.Config) (*lan.Directory, *hubConn) {
	t.Helper()
	c := h.join(addr)
	d := lan.NewDirectoryOn(c, cfg, nil)
	t.Cleanup(d.Close)
	return d, c
}

func watch(t *testing.T, d *lan.Directory) <-chan ports.DirectoryEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// waitPeer waits for a PeerChanged event about name that satisfies ok.
func waitPeer(t *testing.T, ch <-chan ports.DirectoryEvent, name string, ok func(domain.Peer) bool) domain.Peer {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, open := <-ch:
			if !open {
				t.Fatalf("watch closed waiting for %s", name)
			}
			if ev.Kind == ports.PeerChanged && ev.Peer.Name().String() == name && ok(ev.Peer) {
				return ev.Peer
			}
		case <-timeout:
			t.Fatalf("no matching event for %s", name)
		}
	}
}

func online(p domain.Peer) bool  { return p.Online }
func offline(p domain.Peer) bool { return !p.Online }
