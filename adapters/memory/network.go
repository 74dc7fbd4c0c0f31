package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Errors of the in-process network. Both are transport errors: the link was
// lost or never made, and the caller may retry.
var (
	// ErrDisconnected: the sender's or the receiver's network is cut
	// (Network.Disconnect), or the link broke while in use.
	ErrDisconnected = errors.New("memory network: link disconnected")
	// ErrLinkRefused: the dialled host's PeerVerifier refused us. A real
	// TLS handshake does not tell why, so neither does this.
	ErrLinkRefused = errors.New("memory network: the peer refused the link")
)

// Faults are the failures the network simulates between two hosts. The
// zero value is a healthy network.
type Faults struct {
	// Drop is the probability (0..1) that an envelope is lost silently after
	// Send returned nil, and that a file stream breaks at each chunk.
	Drop float64
	// Delay is added before each envelope is delivered (order is kept) and
	// before each file stream starts.
	Delay time.Duration
	// Partition makes the peers unreachable from each other: Send fails
	// with domain.ErrPeerOffline and envelopes in flight are lost.
	Partition bool
	// Disconnect breaks the links now and makes new ones fail with
	// ErrDisconnected until healed; envelopes in flight are lost. A
	// disconnected host's Directory loses the registry too.
	Disconnect bool
}

func (f Faults) combine(g Faults) Faults {
	return Faults{
		Drop:       1 - (1-f.Drop)*(1-g.Drop),
		Delay:      f.Delay + g.Delay,
		Partition:  f.Partition || g.Partition,
		Disconnect: f.Disconnect || g.Disconnect,
	}
}

func (f Faults) broken() bool { return f.Partition || f.Disconnect }

// Network is an in-process network joining Hosts. Hosts reach each other by
// their addresses ("mem:" and the PeerID); faults can be switched on and off
// at any time for one host (SetHostFaults, Disconnect …) or between two
// (SetFaults, Partition, Drop, Delay …). It is safe for concurrent use.
type Network struct {
	mu      sync.Mutex
	hosts   map[string]*Host
	host    map[string]Faults    // by address
	pair    map[[2]string]Faults // by the two addresses, sorted
	changed chan struct{}        // closed and replaced when faults change
	rnd     *rand.Rand
	accept  time.Duration
}

// DefaultAcceptWait is how long a Send waits for a host that joined but has
// not started serving yet (see SetAcceptWait).
const DefaultAcceptWait = time.Second

// SetAcceptWait sets how long a Send waits for a host that joined the
// network but has not called Serve yet, as a real dial waits in a
// listener's backlog (0: such a host is offline at once). A host whose Serve
// ended is offline at once, whatever this says.
func (n *Network) SetAcceptWait(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.accept = d
}

func (n *Network) acceptWait() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.accept
}

// NewNetwork returns an empty, healthy network.
func NewNetwork() *Network {
	return &Network{
		hosts:   make(map[string]*Host),
		host:    make(map[string]Faults),
		pair:    make(map[[2]string]Faults),
		changed: make(chan struct{}),
		rnd:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		accept:  DefaultAcceptWait,
	}
}

// Address is the memory address of an identity's host.
func Address(id domain.Identity) string { return "mem:" + string(id.PeerID()) }

func pairKey(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// faults returns what applies between addresses a and b.
func (n *Network) faults(a, b string) Faults {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.faultsLocked(a, b)
}

func (n *Network) faultsLocked(a, b string) Faults {
	return n.host[a].combine(n.host[b]).combine(n.pair[pairKey(a, b)])
}

func (n *Network) hostDown(addr string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.host[addr].Disconnect
}

// roll draws whether something with probability p happens.
func (n *Network) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rnd.Float64() < p
}

// watchFaults returns a channel closed at the next change of faults.
func (n *Network) watchFaults() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changed
}

// update applies f to the faults under the lock, wakes whoever watches
// them and breaks the links they now cut.
func (n *Network) update(f func()) {
	n.mu.Lock()
	f()
	close(n.changed)
	n.changed = make(chan struct{})
	hosts := make([]*Host, 0, len(n.hosts))
	for _, h := range n.hosts {
		hosts = append(hosts, h)
	}
	n.mu.Unlock()
	for _, h := range hosts {
		h.breakLinks(func(remote string) bool { return n.faults(h.addr, remote).broken() })
	}
}

// SetFaults sets the faults between hosts a and b (both directions),
// replacing earlier ones for that pair.
func (n *Network) SetFaults(a, b *Host, f Faults) {
	n.update(func() { n.pair[pairKey(a.addr, b.addr)] = f })
}

// SetHostFaults sets the faults of everything h sends or receives,
// replacing earlier ones for h.
func (n *Network) SetHostFaults(h *Host, f Faults) {
	n.update(func() { n.host[h.addr] = f })
}

func (n *Network) editPair(a, b *Host, edit func(*Faults)) {
	n.update(func() {
		k := pairKey(a.addr, b.addr)
		f := n.pair[k]
		edit(&f)
		n.pair[k] = f
	})
}

func (n *Network) editHost(h *Host, edit func(*Faults)) {
	n.update(func() {
		f := n.host[h.addr]
		edit(&f)
		n.host[h.addr] = f
	})
}

// Drop loses envelopes between a and b with probability p (1: all).
func (n *Network) Drop(a, b *Host, p float64) { n.editPair(a, b, func(f *Faults) { f.Drop = p }) }

// Delay delays every envelope between a and b by d.
func (n *Network) Delay(a, b *Host, d time.Duration) {
	n.editPair(a, b, func(f *Faults) { f.Delay = d })
}

// Partition cuts a from b (both directions) until Heal.
func (n *Network) Partition(a, b *Host) { n.editPair(a, b, func(f *Faults) { f.Partition = true }) }

// Disconnect cuts every link of h and its directory until HealHost.
func (n *Network) Disconnect(h *Host) { n.editHost(h, func(f *Faults) { f.Disconnect = true }) }

// Heal removes every fault between a and b (not those of a or b alone).
func (n *Network) Heal(a, b *Host) { n.update(func() { delete(n.pair, pairKey(a.addr, b.addr)) }) }

// HealHost removes every fault set for h alone.
func (n *Network) HealHost(h *Host) { n.update(func() { delete(n.host, h.addr) }) }

// HealAll removes every fault.
func (n *Network) HealAll() {
	n.update(func() {
		clear(n.host)
		clear(n.pair)
	})
}

func (n *Network) lookup(addr string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hosts[addr]
}

// Host is one machine on the network: an identity with a message link and a
// file transport, reachable at Address(identity). Make it with NewHost;
// Close takes it off the network (a new Host with the same identity may
// then join, as after a restart).
type Host struct {
	net      *Network
	me       domain.LocalIdentity
	addr     string
	verifier ports.PeerVerifier
	// sendTimeout bounds how long Send waits for room in a full queue
	// when ctx has no deadline (a peer that stops reading cannot block us forever).
	sendTimeout time.Duration

	dialMu                  sync.Mutex // serialises dialling, so one link per peer at a time
	mu                      sync.Mutex
	closed                  bool
	out                     map[string]*link // links we dialled, by the peer's fingerprint
	linkServed, filesServed bool             // Serve was called once (the listener is then gone when it ends)
	in                      *inbox           // while Serve runs
	files                   *fileInbox       // while the file transport's Serve runs
	state                   chan struct{}    // closed and replaced when in, files or closed change
}

// stateChangedLocked wakes WaitServing; the caller holds h.mu.
func (h *Host) stateChangedLocked() {
	close(h.state)
	h.state = make(chan struct{})
}

// accepting reports whether the host serves its link (files: its file
// transport). A host that has not served yet is like a listening socket
// whose owner has not called Accept: the dialler waits for it, up to wait.
// A host whose Serve ended is like a closed listener: refused at once.
func (h *Host) accepting(ctx context.Context, files bool, wait time.Duration) bool {
	var timeout <-chan time.Time
	for {
		h.mu.Lock()
		serving, served := h.in != nil, h.linkServed
		if files {
			serving, served = h.files != nil, h.filesServed
		}
		closed, ch := h.closed, h.state
		h.mu.Unlock()
		switch {
		case serving:
			return true
		case closed, served, wait <= 0:
			return false
		}
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// WaitServing waits until the host's link and, if files is true, its file
// transport are serving (or ctx is done, or the host closed).
func (h *Host) WaitServing(ctx context.Context, files bool) error {
	for {
		h.mu.Lock()
		ready := h.in != nil && (!files || h.files != nil)
		closed, ch := h.closed, h.state
		h.mu.Unlock()
		switch {
		case ready:
			return nil
		case closed:
			return fmt.Errorf("wait for %s to serve: %w", h.addr, net.ErrClosed)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to serve: %w", h.addr, ctx.Err())
		}
	}
}

// Queue bounds of a link.
const (
	// LinkQueue is how many envelopes a link buffers towards a peer.
	LinkQueue = 1024
	// DefaultSendTimeout bounds a Send blocked on a full queue.
	DefaultSendTimeout = 10 * time.Second
	// maxEnvelopeBytes mirrors the 1 MiB frame limit of real links.
	maxEnvelopeBytes = 1 << 20
)

// NewHost joins the network as me; verifier decides which peers that dial us
// may use a link. The cleanup (also Host.Close) takes the host off the
// network. It fails if a live host already holds me's address.
func NewHost(n *Network, me domain.LocalIdentity, verifier ports.PeerVerifier) (*Host, func(), error) {
	if n == nil || verifier == nil || me.IsZero() {
		return nil, nil, errors.New("memory host: needs a network, an identity and a verifier")
	}
	h := &Host{net: n, me: me, addr: Address(me.Identity), verifier: verifier, sendTimeout: DefaultSendTimeout, out: make(map[string]*link), state: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.hosts[h.addr]; ok && !old.isClosed() {
		return nil, nil, fmt.Errorf("memory host %s: address in use", h.addr)
	}
	n.hosts[h.addr] = h
	return h, h.Close, nil
}

// Identity is the host's identity.
func (h *Host) Identity() domain.LocalIdentity { return h.me }

// Addr is the host's address.
func (h *Host) Addr() string { return h.addr }

// Peer describes the host as a directory would: online, at its address.
func (h *Host) Peer() domain.Peer {
	return domain.Peer{Identity: h.me.Identity, Online: true, Endpoints: domain.Endpoints{Link: []string{h.addr}, File: []string{h.addr}}}
}

// Link is the host's message link.
func (h *Host) Link() *Link { return &Link{h: h} }

// Files is the host's file transport.
func (h *Host) Files() *FileTransport { return &FileTransport{h: h} }

func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Close takes the host off the network: its links break, Serve calls return
// and later Sends fail with net.ErrClosed. It is idempotent.
func (h *Host) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.stateChangedLocked()
	in, files := h.in, h.files
	h.mu.Unlock()
	h.net.mu.Lock()
	if h.net.hosts[h.addr] == h {
		delete(h.net.hosts, h.addr)
	}
	h.net.mu.Unlock()
	h.breakLinks(func(string) bool { return true })
	if in != nil {
		in.stop()
	}
	if files != nil {
		files.stop()
	}
}

// breakLinks closes our outgoing links and our inbound ones whose remote
// address cut says to cut.
func (h *Host) breakLinks(cut func(remote string) bool) {
	h.mu.Lock()
	var doomed []*link
	for key, l := range h.out {
		if cut(l.to.addr) {
			doomed = append(doomed, l)
			delete(h.out, key)
		}
	}
	h.mu.Unlock()
	for _, l := range doomed {
		l.close(ErrDisconnected)
	}
}

// dial finds the host at one of addrs that answers, checks it is want, and
// has it verify us. It returns the host or why none answered.
func (h *Host) dial(ctx context.Context, want domain.Identity, addrs []string, files bool) (*Host, error) {
	if h.isClosed() {
		return nil, fmt.Errorf("dial %s: %w", want.Name(), net.ErrClosed)
	}
	var lastErr error = domain.ErrPeerOffline
	for _, addr := range addrs {
		f := h.net.faults(h.addr, addr)
		if f.Disconnect {
			lastErr = fmt.Errorf("dial %s: %w", addr, ErrDisconnected)
			continue
		}
		if f.Partition {
			continue // no answer
		}
		r := h.net.lookup(addr)
		if r == nil || r == h || !r.accepting(ctx, files, h.net.acceptWait()) {
			continue
		}
		if !r.me.SameKey(want.PublicKey()) {
			return nil, &domain.KeyChangedError{Name: want.Name(), Old: want.Fingerprint(), New: r.me.Fingerprint()}
		}
		if err := r.verifier.VerifyPeer(ctx, h.me.Identity); err != nil {
			return nil, fmt.Errorf("dial %s at %s: %w", want.Name(), addr, ErrLinkRefused)
		}
		return r, nil
	}
	if errors.Is(lastErr, domain.ErrPeerOffline) {
		return nil, fmt.Errorf("dial %s: %w", want.Name(), domain.ErrPeerOffline)
	}
	return nil, lastErr
}
