package udp_test

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"testing"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/adapters/udp/internal/diskfile"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports/contract"
)

// relay forwards datagrams between one client and a server, dropping a
// share of them and holding some back to deliver after the next one.
type relay struct {
	front, back *net.UDPConn
	server      *net.UDPAddr
	drop, delay float64

	mu      sync.Mutex
	client  *net.UDPAddr
	dropped int
	passed  int
	wg      sync.WaitGroup
}

func newRelay(t *testing.T, server string, drop, delay float64) *relay {
	t.Helper()
	sa, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{front: front, back: back, server: sa, drop: drop, delay: delay}
	r.wg.Add(2)
	go r.pump(front, back, func(from *net.UDPAddr) *net.UDPAddr {
		r.mu.Lock()
		r.client = from
		r.mu.Unlock()
		return sa
	}, 1)
	go r.pump(back, front, func(*net.UDPAddr) *net.UDPAddr {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.client
	}, 2)
	t.Cleanup(func() {
		_ = front.Close()
		_ = back.Close()
		r.wg.Wait()
	})
	return r
}

// pump reads from in and writes to out until in is closed.
func (r *relay) pump(in, out *net.UDPConn, dest func(*net.UDPAddr) *net.UDPAddr, seed uint64) {
	defer r.wg.Done()
	rng := rand.New(rand.NewPCG(seed, 7))
	buf := make([]byte, 64<<10)
	var held []byte
	var heldTo *net.UDPAddr
	for {
		n, from, err := in.ReadFromUDP(buf)
		if err != nil {
			return
		}
		to := dest(from)
		if to == nil {
			continue
		}
		r.mu.Lock()
		if rng.Float64() < r.drop {
			r.dropped++
			r.mu.Unlock()
			continue
		}
		r.passed++
		r.mu.Unlock()
		pkt := append([]byte(nil), buf[:n]...)
		if held == nil && rng.Float64() < r.delay {
			held, heldTo = pkt, to
			continue
		}
		_, _ = out.WriteToUDP(pkt, to)
		if held != nil {
			_, _ = out.WriteToUDP(held, heldTo)
			held = nil
		}
	}
}

func TestLossyRelay(t *testing.T) {
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
	receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{})
	recv := diskfile.New(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- receiver.Serve(ctx, recv) }()
	defer func() { cancel(); <-served }()

	rl := newRelay(t, receiver.Endpoints()[0], 0.05, 0.05)
	const size = 8 << 20
	id := domain.NewTransferID()
	path := t.TempDir() + "/lossy.bin"
	sum, err := diskfile.WriteRandom(path, size, 5)
	if err != nil {
		t.Fatal(err)
	}
	src, err := diskfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	e := recv.Expect(id, 0, "lossy.bin", sum)
	peer := domain.Peer{Identity: bob.Identity, Endpoints: domain.Endpoints{File: []string{rl.front.LocalAddr().String()}}}
	if err := sender.Send(context.Background(), peer, id, 0, src, nil); err != nil {
		t.Fatalf("Send through the lossy relay: %v", err)
	}
	got, err := diskfile.HashFile(recv.Path(e))
	if err != nil || got != sum {
		t.Fatalf("received hash %x (err %v), want %x", got, err, sum)
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	t.Logf("relay passed %d datagrams, dropped %d", rl.passed, rl.dropped)
	if rl.dropped == 0 {
		t.Fatal("the relay dropped nothing: the test proved nothing")
	}
}
