package memory_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

const wait = 10 * time.Second

// inbox records envelopes a host received, and checks that one peer's
// envelopes never reach it concurrently.
type inbox struct {
	mu      sync.Mutex
	got     []string // "sender:body"
	changed chan struct{}
	busy    map[string]*atomic.Int32
	gate    chan struct{} // when set, each HandleEnvelope waits on it
}

func newInbox() *inbox {
	return &inbox{changed: make(chan struct{}), busy: map[string]*atomic.Int32{}}
}

func (in *inbox) HandleEnvelope(ctx context.Context, from domain.Identity, env ports.Envelope) error {
	in.mu.Lock()
	b, ok := in.busy[from.Name().Key()]
	if !ok {
		b = new(atomic.Int32)
		in.busy[from.Name().Key()] = b
	}
	gate := in.gate
	in.mu.Unlock()
	if b.Add(1) != 1 {
		panic("two envelopes of one peer handled at once")
	}
	defer b.Add(-1)
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	in.mu.Lock()
	in.got = append(in.got, from.Name().String()+":"+env.Body)
	close(in.changed)
	in.changed = make(chan struct{})
	in.mu.Unlock()
	return nil
}

func (in *inbox) received() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.got...)
}

// waitFor waits until the inbox holds an entry want.
func (in *inbox) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(wait)
	for {
		in.mu.Lock()
		for _, g := range in.got {
			if g == want {
				in.mu.Unlock()
				return
			}
		}
		ch := in.changed
		in.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%q never arrived; got %d envelopes", want, len(in.received()))
		}
	}
}

type testHost struct {
	*memory.Host
	in *inbox
}

// host joins net as name and serves its link into a new inbox.
func host(t *testing.T, n *memory.Network, name string, v ports.PeerVerifier) testHost {
	t.Helper()
	h, cleanup, err := memory.NewHost(n, newLocal(t, name), v)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	in := newInbox()
	serve(t, func(ctx context.Context) error { return h.Link().Serve(ctx, in) })
	waitServing(t, h, false)
	return testHost{Host: h, in: in}
}

// serve runs a Serve function until the test ends and checks it returns nil.
func serve(t *testing.T, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve returned %v after cancel, want nil", err)
				}
			case <-time.After(wait):
				t.Error("Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitServing(t *testing.T, h *memory.Host, files bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.WaitServing(ctx, files); err != nil {
		t.Fatal(err)
	}
}

func env(body string) ports.Envelope {
	return ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: body}
}

func send(t *testing.T, from testHost, to testHost, body string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return from.Link().Send(ctx, to.Peer(), env(body))
}

func TestLinkDeliversInOrderOneAtATime(t *testing.T) {
	n := memory.NewNetwork()
	a, b, c := host(t, n, "alice", memory.AcceptAll), host(t, n, "bob", memory.AcceptAll), host(t, n, "carol", memory.AcceptAll)
	const count = 500
	var wg sync.WaitGroup
	for _, from := range []testHost{a, c} {
		wg.Go(func() {
			for i := range count {
				if err := send(t, from, b, strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.in.waitFor(t, fmt.Sprintf("alice:%d", count-1))
	b.in.waitFor(t, fmt.Sprintf("carol:%d", count-1))
	next := map[string]int{}
	for _, g := range b.in.received() {
		var name string
		var i int
		if _, err := fmt.Sscanf(g, "%5s:%d", &name, &i); err != nil {
			t.Fatalf("%q: %v", g, err)
		}
		if i != next[name] {
			t.Fatalf("from %s got %d, want %d (out of order, lost or duplicated)", name, i, next[name])
		}
		next[name]++
	}
	if next["alice"] != count || next["carol"] != count {
		t.Fatalf("received %v, want %d from each", next, count)
	}
}

func TestLinkOfflineAndServeStop(t *testing.T) {
	n := memory.NewNetwork()
	a := host(t, n, "alice", memory.AcceptAll)
	bh, _, err := memory.NewHost(n, newLocal(t, "bob"), memory.AcceptAll)
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	b := testHost{Host: bh, in: newInbox()}
	n.SetAcceptWait(0)
	if err := send(t, a, b, "early"); !errors.Is(err, domain.ErrPeerOffline) {
		t.Fatalf("send to a host that does not serve: %v, want ErrPeerOffline", err)
	}
	stranger := newLocal(t, "stranger")
	p := domain.Peer{Identity: stranger.Identity, Endpoints: domain.Endpoints{Link: []string{memory.Address(stranger.Identity)}}}
	if err := a.Link().Send(context.Background(), p, env("x")); !errors.Is(err, domain.ErrPeerOffline) {
		t.Fatalf("send to an unknown address: %v, want ErrPeerOffline", err)
	}
	// A host that joined but has not served yet is a listener whose owner
	// has not accepted: a Send waits for Serve.
	n.SetAcceptWait(wait)
	sent := make(chan error, 1)
	go func() { sent <- send(t, a, b, "hello") }()
	stop := serve(t, func(ctx context.Context) error { return bh.Link().Serve(ctx, b.in) })
	if err := <-sent; err != nil {
		t.Fatalf("send racing the first Serve: %v", err)
	}
	if err := send(t, a, b, "hello"); err != nil {
		t.Fatal(err)
	}
	b.in.waitFor(t, "alice:hello")
	stop()
	if err := send(t, a, b, "after stop"); !errors.Is(err, domain.ErrPeerOffline) {
		t.Fatalf("send after the peer stopped serving: %v, want ErrPeerOffline", err)
	}
	if _, _, err := memory.NewHost(n, bh.Identity(), memory.AcceptAll); err == nil {
		t.Fatal("a second live host with the same identity joined")
	}
	bh.Close()
	again, cleanup, err := memory.NewHost(n, bh.Identity(), memory.AcceptAll)
	if err != nil {
		t.Fatalf("rejoin after Close: %v", err)
	}
	cleanup()
	_ = again
}

func TestLinkAuthenticatesBothWays(t *testing.T) {
	n := memory.NewNetwork()
	a := host(t, n, "alice", memory.AcceptAll)
	var presented atomic.Value
	refuse := memory.VerifierFunc(func(_ context.Context, id domain.Identity) error {
		presented.Store(id)
		return &domain.KeyChangedError{Name: id.Name()}
	})
	b := host(t, n, "bob", refuse)

	err := send(t, a, b, "let me in")
	if !errors.Is(err, memory.ErrLinkRefused) {
		t.Fatalf("send to a verifier that refuses: %v, want ErrLinkRefused", err)
	}
	if id, _ := presented.Load().(domain.Identity); !id.SameKey(a.Identity().PublicKey()) {
		t.Fatal("the dialled host's verifier did not see the dialler's identity")
	}
	if got := b.in.received(); len(got) != 0 {
		t.Fatalf("a refused peer delivered %v", got)
	}

	c := host(t, n, "carol", memory.AcceptAll)
	impostor := newLocal(t, "carol").Identity // the name carol, another key
	p := c.Peer()
	p.Identity = impostor
	err = a.Link().Send(context.Background(), p, env("for the real carol?"))
	var kc *domain.KeyChangedError
	if !errors.As(err, &kc) {
		t.Fatalf("send expecting another key: %v, want *KeyChangedError", err)
	}
	if kc.Old != impostor.Fingerprint() || kc.New != c.Identity().Fingerprint() {
		t.Fatalf("KeyChangedError names %s → %s", kc.Old.Short(), kc.New.Short())
	}
}

func TestLinkFaults(t *testing.T) {
	n := memory.NewNetwork()
	a, b := host(t, n, "alice", memory.AcceptAll), host(t, n, "bob", memory.AcceptAll)

	n.Drop(a.Host, b.Host, 1)
	for i := range 10 {
		if err := send(t, a, b, fmt.Sprint("lost ", i)); err != nil {
			t.Fatalf("send with drop: %v, want nil (lost silently)", err)
		}
	}
	n.Heal(a.Host, b.Host)
	if err := send(t, a, b, "marker 1"); err != nil {
		t.Fatal(err)
	}
	b.in.waitFor(t, "alice:marker 1")
	if got := b.in.received(); len(got) != 1 {
		t.Fatalf("with drop 1, %d envelopes arrived: %v", len(got), got)
	}

	n.Partition(a.Host, b.Host)
	if err := send(t, a, b, "partitioned"); !errors.Is(err, domain.ErrPeerOffline) {
		t.Fatalf("send across a partition: %v, want ErrPeerOffline", err)
	}
	if err := send(t, b, a, "partitioned"); !errors.Is(err, domain.ErrPeerOffline) {
		t.Fatalf("send back across a partition: %v, want ErrPeerOffline", err)
	}
	n.Heal(a.Host, b.Host)

	n.Disconnect(a.Host)
	if err := send(t, a, b, "unplugged"); !errors.Is(err, memory.ErrDisconnected) {
		t.Fatalf("send from a disconnected host: %v, want ErrDisconnected", err)
	}
	if err := send(t, b, a, "unplugged"); !errors.Is(err, memory.ErrDisconnected) {
		t.Fatalf("send to a disconnected host: %v, want ErrDisconnected", err)
	}
	n.HealHost(a.Host)

	n.Delay(a.Host, b.Host, time.Millisecond)
	for i := range 5 {
		if err := send(t, a, b, fmt.Sprint("slow ", i)); err != nil {
			t.Fatal(err)
		}
	}
	b.in.waitFor(t, "alice:slow 4")
	n.HealAll()

	n.SetFaults(a.Host, b.Host, memory.Faults{Drop: 0.5})
	for i := range 200 {
		if err := send(t, a, b, fmt.Sprint("coin ", i)); err != nil {
			t.Fatal(err)
		}
	}
	n.HealAll()
	if err := send(t, a, b, "marker 2"); err != nil {
		t.Fatal(err)
	}
	b.in.waitFor(t, "alice:marker 2")
	coins, last := 0, -1
	for _, g := range b.in.received() {
		var i int
		if _, err := fmt.Sscanf(g, "alice:coin %d", &i); err == nil {
			if i <= last {
				t.Fatalf("coin %d after %d", i, last)
			}
			last = i
			coins++
		}
	}
	if coins == 0 || coins == 200 {
		t.Fatalf("with drop 0.5, %d of 200 arrived", coins)
	}
}

func TestDisconnectLosesEnvelopesInFlight(t *testing.T) {
	n := memory.NewNetwork()
	a, b := host(t, n, "alice", memory.AcceptAll), host(t, n, "bob", memory.AcceptAll)
	gate := make(chan struct{})
	b.in.mu.Lock()
	b.in.gate = gate
	b.in.mu.Unlock()
	for i := range 5 {
		if err := send(t, a, b, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	n.Disconnect(b.Host)
	b.in.mu.Lock()
	b.in.gate = nil
	b.in.mu.Unlock()
	close(gate)
	n.HealHost(b.Host)
	if err := send(t, a, b, "after"); err != nil {
		t.Fatal(err)
	}
	b.in.waitFor(t, "alice:after")
	got := b.in.received()
	// The first envelope was in the handler when the link broke; the other
	// four were queued on the broken link and are lost.
	if len(got) > 2 || got[len(got)-1] != "alice:after" {
		t.Fatalf("after a disconnect received %v", got)
	}
}

func TestLinkRejectsOversizedEnvelope(t *testing.T) {
	n := memory.NewNetwork()
	a, b := host(t, n, "alice", memory.AcceptAll), host(t, n, "bob", memory.AcceptAll)
	big := make([]byte, 2<<20)
	if err := send(t, a, b, string(big)); !errors.Is(err, domain.ErrTooLarge) {
		t.Fatalf("2 MiB envelope: %v, want ErrTooLarge", err)
	}
}

func TestLinkTriesEndpointsInOrder(t *testing.T) {
	n := memory.NewNetwork()
	a, b := host(t, n, "alice", memory.AcceptAll), host(t, n, "bob", memory.AcceptAll)
	p := b.Peer()
	p.Endpoints.Link = []string{"mem:nobody-here", "10.0.0.1:5001", b.Addr()}
	if err := a.Link().Send(context.Background(), p, env("third time lucky")); err != nil {
		t.Fatal(err)
	}
	b.in.waitFor(t, "alice:third time lucky")
}

func TestHostFaultsApplyToEveryPeer(t *testing.T) {
	n := memory.NewNetwork()
	a, b, c := host(t, n, "alice", memory.AcceptAll), host(t, n, "bob", memory.AcceptAll), host(t, n, "carol", memory.AcceptAll)
	n.SetHostFaults(c.Host, memory.Faults{Drop: 1})
	for _, from := range []testHost{a, b} {
		if err := send(t, from, c, "into the void"); err != nil {
			t.Fatal(err)
		}
	}
	if err := send(t, a, b, "unaffected"); err != nil {
		t.Fatal(err)
	}
	b.in.waitFor(t, "alice:unaffected")
	n.HealHost(c.Host)
	if err := send(t, b, c, "healed"); err != nil {
		t.Fatal(err)
	}
	c.in.waitFor(t, "bob:healed")
	if got := c.in.received(); len(got) != 1 {
		t.Fatalf("carol, dropping everything, received %v", got)
	}
}
