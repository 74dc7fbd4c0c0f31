package udp

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// maxAttempts bounds the ring of connection attempts kept for the doctor;
// maxPeerStatus bounds the per-peer "reached / cannot reach" memory.
const (
	maxAttempts   = 32
	maxPeerStatus = 1024
)

// reachState is what STUN taught us, and what was last said about each
// peer (so that a change is logged once, at INFO).
type reachState struct {
	mu      sync.Mutex
	mapping domain.NATMapping
	refl    []netip.AddrPort
	said    string
	peers   map[string]string
	// rounds counts the STUN rounds that ended (answered or not);
	// roundEnd is closed when the next one ends.
	rounds   int
	roundEnd chan struct{}
}

// endRound records that a STUN round ended and wakes its waiters.
func (r *reachState) endRound() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rounds++
	if r.roundEnd != nil {
		close(r.roundEnd)
		r.roundEnd = nil
	}
}

// learned reports whether a STUN round has ended, and otherwise returns
// a channel closed when one does.
func (r *reachState) learned() (bool, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rounds > 0 {
		return true, nil
	}
	if r.roundEnd == nil {
		r.roundEnd = make(chan struct{})
	}
	return false, r.roundEnd
}

func (r *reachState) nat() domain.NATMapping {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mapping
}

func (r *reachState) reflexive() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.refl)
}

func (r *reachState) set(t *Transport, m domain.NATMapping, refl []netip.AddrPort) {
	var uniq []netip.AddrPort
	for _, a := range refl {
		if !slices.Contains(uniq, a) {
			uniq = append(uniq, a)
		}
	}
	line := fmt.Sprintf("nat=%s reflexive=%s", natLabel(m), joinAddrs(uniq))
	r.mu.Lock()
	r.mapping, r.refl = m, uniq
	changed := line != r.said
	r.said = line
	r.mu.Unlock()
	if changed {
		t.log.Info("reachability: " + line)
	}
}

func natLabel(m domain.NATMapping) string {
	if m == domain.NATUnknown {
		return "unknown"
	}
	return string(m)
}

func joinAddrs(as []netip.AddrPort) string {
	s := ""
	for i, a := range as {
		if i > 0 {
			s += ","
		}
		s += a.String()
	}
	if s == "" {
		return "none"
	}
	return s
}

// say logs line about peer once per change.
func (r *reachState) say(t *Transport, peer domain.Username, line string) {
	key := peer.String()
	r.mu.Lock()
	if r.peers == nil || len(r.peers) >= maxPeerStatus {
		r.peers = make(map[string]string)
	}
	changed := r.peers[key] != line
	r.peers[key] = line
	r.mu.Unlock()
	if changed {
		t.log.Info(line, "peer", key)
	}
}

func (r *reachState) reached(t *Transport, c *pconn) {
	p := pathOf(c)
	r.say(t, c.peer.Name(), fmt.Sprintf("reached %s: %s %s %s", c.peer.Name(), p.Kind, p.Transport, p.Remote))
	t.diag.attempt(c.peer.Name(), domain.Path{Kind: p.Kind, Transport: p.Transport, Remote: p.Remote}, nil, dialledBy(c))
}

func dialledBy(c *pconn) string {
	if c.dialledByMe {
		return "we dialled"
	}
	return "the peer dialled"
}

func (r *reachState) cannotReach(t *Transport, peer domain.Username, reason string) {
	r.say(t, peer, fmt.Sprintf("cannot reach %s: %s", peer, reason))
}

// diagnostics keeps the last connection attempts.
type diagnostics struct {
	mu   sync.Mutex
	ring []ports.Attempt // oldest first
}

func (d *diagnostics) attempt(peer domain.Username, path domain.Path, err error, detail string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.ring) == maxAttempts {
		d.ring = d.ring[1:]
	}
	d.ring = append(d.ring, ports.Attempt{Peer: peer, At: time.Now(), Path: path, Err: err, Detail: detail})
}

// NAT is the mapping behaviour STUN last measured (ports.Diagnostics).
func (t *Transport) NAT() domain.NATMapping { return t.reach.nat() }

// Candidates are our own candidates, typed (ports.Diagnostics): host
// addresses of the socket, server-reflexive addresses STUN taught us, and
// the relay address while an allocation is held.
func (t *Transport) Candidates() []string {
	var out []string
	for _, ep := range t.endpoints {
		out = append(out, "host "+ep)
	}
	for _, a := range t.reach.reflexive() {
		out = append(out, "srflx "+a.String())
	}
	if a, ok := t.relay.addr(); ok {
		out = append(out, "relay "+a.String())
	}
	return out
}

// Attempts are the last connection attempts, newest first
// (ports.Diagnostics).
func (t *Transport) Attempts() []ports.Attempt {
	t.diag.mu.Lock()
	defer t.diag.mu.Unlock()
	out := slices.Clone(t.diag.ring)
	slices.Reverse(out)
	return out
}
