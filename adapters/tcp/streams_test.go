package tcp_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// switchboard stands in for the QUIC transport: every peer's streams are
// in-process pipes, labelled as a relayed QUIC path.
type switchboard struct {
	mu    sync.Mutex
	ends  map[string]chan ports.PathConn // by public key
	opens atomic.Int32
}

func (sb *switchboard) endFor(me domain.Identity) *pipeStreams {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.ends == nil {
		sb.ends = map[string]chan ports.PathConn{}
	}
	ch := make(chan ports.PathConn, 4)
	sb.ends[string(me.PublicKey())] = ch
	return &pipeStreams{sb: sb, me: me, in: ch}
}

type pipeStreams struct {
	sb *switchboard
	me domain.Identity
	in chan ports.PathConn
}

var relayed = domain.Path{Kind: domain.PathRelayed, Transport: domain.TransportQUIC, Remote: "203.0.113.1:3478"}

type pipeConn struct {
	net.Conn
	peer domain.Identity
}

func (c pipeConn) Peer() domain.Identity { return c.peer }
func (c pipeConn) Path() domain.Path     { return relayed }

func (p *pipeStreams) OpenStream(ctx context.Context, to domain.Peer) (ports.PathConn, error) {
	p.sb.opens.Add(1)
	p.sb.mu.Lock()
	ch := p.sb.ends[string(to.Identity.PublicKey())]
	p.sb.mu.Unlock()
	if ch == nil {
		return nil, ports.ErrUnreachable
	}
	a, b := net.Pipe()
	select {
	case ch <- pipeConn{b, p.me}:
		return pipeConn{a, to.Identity}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pipeStreams) AcceptStream(ctx context.Context) (ports.PathConn, error) {
	select {
	case c := <-p.in:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func startStreamEnd(t *testing.T, sb *switchboard, name string) end {
	t.Helper()
	return startStreamEndWith(t, sb, name, tcp.Config{ListenAddr: "127.0.0.1:0"})
}

func startStreamEndWith(t *testing.T, sb *switchboard, name string, cfg tcp.Config) end {
	t.Helper()
	me := newIdentity(t, name)
	l, cleanup, err := tcp.NewLink(me, acceptAll, sb.endFor(me.Identity), cfg, quietLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	rec := &contract.LinkRecorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, rec) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return end{me: me, link: l, rec: rec, logs: &logBuffer{}}
}

// A peer whose only link endpoint is a private address of another network
// (its home LAN behind a NAT) is reached over the QUIC stream, with the
// same handshake and frames, and both sides report the path.
func TestLinkFallsBackToPeerStreams(t *testing.T) {
	t.Parallel()
	sb := &switchboard{}
	alice, bob := startStreamEnd(t, sb, "alice"), startStreamEnd(t, sb, "bob")
	bobBehindNAT := domain.Peer{Identity: bob.me.Identity, Online: true,
		Endpoints: domain.Endpoints{Link: []string{"10.255.255.1:9"}}}
	ctx := testCtx(t)
	for i := range 3 {
		env := ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: "over quic " + string(rune('a'+i))}
		if err := alice.link.Send(ctx, bobBehindNAT, env); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	got := bob.rec.WaitN(t, 3)
	for i, r := range got {
		if !r.From.SameKey(alice.me.PublicKey()) || r.Env.Body != "over quic "+string(rune('a'+i)) {
			t.Fatalf("received %d: %+v", i, r)
		}
	}
	if p := alice.link.Path(bob.me.Identity); p != relayed {
		t.Errorf("alice's path to bob = %+v, want %+v", p, relayed)
	}
	if p := bob.link.Path(alice.me.Identity); p != relayed {
		t.Errorf("bob's path to alice = %+v, want %+v", p, relayed)
	}
	if n := sb.opens.Load(); n != 1 {
		t.Errorf("%d streams opened, want 1 (the link is reused)", n)
	}
	// The answer comes back on the same link.
	reply := ports.Envelope{Kind: ports.KindDelivered, MessageID: got[0].Env.MessageID}
	if err := bob.link.Send(ctx, domain.Peer{Identity: alice.me.Identity, Online: true}, reply); err != nil {
		t.Fatalf("reply: %v", err)
	}
	if r := alice.rec.WaitN(t, 1); r[0].Env.Kind != ports.KindDelivered {
		t.Fatalf("alice got %+v", r[0])
	}
	if n := sb.opens.Load(); n != 1 {
		t.Errorf("%d streams opened after the reply, want 1", n)
	}
}

// When TCP works, it wins and the path says so.
func TestLinkPrefersTCPWhenItConnects(t *testing.T) {
	t.Parallel()
	sb := &switchboard{}
	alice, bob := startStreamEnd(t, sb, "alice"), startStreamEnd(t, sb, "bob")
	env := ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: "over tcp"}
	if err := alice.link.Send(testCtx(t), bob.peer(), env); err != nil {
		t.Fatal(err)
	}
	bob.rec.WaitN(t, 1)
	p := alice.link.Path(bob.me.Identity)
	if p.Kind != domain.PathLAN || p.Transport != domain.TransportTCP {
		t.Errorf("path = %+v, want lan tcp", p)
	}
	if n := sb.opens.Load(); n != 0 {
		t.Errorf("%d streams opened although TCP connects at once", n)
	}
}

// A peer that neither TCP nor the streams reach gives the streams' reason.
func TestLinkReportsWhyNoPathWorked(t *testing.T) {
	t.Parallel()
	sb := &switchboard{}
	alice := startStreamEnd(t, sb, "alice")
	carol := newIdentity(t, "carol")
	err := alice.link.Send(testCtx(t), domain.Peer{Identity: carol.Identity, Online: true}, ports.Envelope{Kind: ports.KindTyping})
	if !errors.Is(err, domain.ErrPeerOffline) || !errors.Is(err, ports.ErrUnreachable) {
		t.Fatalf("err = %v, want offline wrapping unreachable", err)
	}
}

func TestDialableKeepsOnlyAddressesWorthATCPDial(t *testing.T) {
	t.Parallel()
	local := []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("127.0.0.0/8")}
	in := []string{"192.168.1.7:7000", "10.0.0.1:80", "127.0.0.1:7000", "203.0.113.9:7000", "[fe80::1%eth0]:7000",
		"0.0.0.0:7000", "peer.example:7000", "192.168.1.7:0", "garbage"}
	want := []string{"192.168.1.7:7000", "127.0.0.1:7000", "203.0.113.9:7000", "peer.example:7000"}
	if got := tcp.Dialable(in, local); !slices.Equal(got, want) {
		t.Errorf("Dialable = %q, want %q", got, want)
	}
}

// A link over a QUIC stream moves to TCP once TCP connects, and keeps
// carrying envelopes, in order, on the new path.
func TestLinkMovesFromAStreamToTCPWhenItCan(t *testing.T) {
	t.Parallel()
	sb := &switchboard{}
	cfg := tcp.Config{ListenAddr: "127.0.0.1:0", UpgradeInterval: 50 * time.Millisecond}
	alice, bob := startStreamEndWith(t, sb, "alice", cfg), startStreamEndWith(t, sb, "bob", cfg)
	ctx := testCtx(t)
	hidden := domain.Peer{Identity: bob.me.Identity, Online: true, Endpoints: domain.Endpoints{Link: []string{"10.255.255.1:9"}}}
	send := func(to domain.Peer, body string) {
		t.Helper()
		if err := alice.link.Send(ctx, to, ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	send(hidden, "first, over quic")
	bob.rec.WaitN(t, 1)
	if p := alice.link.Path(bob.me.Identity); p.Transport != domain.TransportQUIC {
		t.Fatalf("path = %+v, want quic", p)
	}
	send(bob.peer(), "second: bob's TCP endpoint is known now")
	bob.rec.WaitN(t, 2)
	waitFor(t, "the link to move to TCP", func() bool {
		return alice.link.Path(bob.me.Identity).Transport == domain.TransportTCP &&
			bob.link.Path(alice.me.Identity).Transport == domain.TransportTCP
	})
	send(bob.peer(), "third, over tcp")
	got := bob.rec.WaitN(t, 3)
	if got[2].Env.Body != "third, over tcp" {
		t.Fatalf("third envelope = %+v", got[2])
	}
}
