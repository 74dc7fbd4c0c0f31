package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/pion/stun/v3"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// STUN timing (docs/reachability.md, "STUN").
const (
	// stunInterval repeats the binding: it keeps the NAT mapping alive and
	// the registry's record of it fresh.
	stunInterval = 25 * time.Second
	// stunPoll is how often the session is looked at for a change.
	stunPoll = 2 * time.Second
	// stunRTO is the first retransmission timeout, doubled after each of
	// stunTries transmissions (RFC 8489 §6.2.1: 250 ms, 500 ms, 1 s, 2 s).
	stunRTO   = 250 * time.Millisecond
	stunTries = 4
	// maxSTUNServers bounds the servers asked in one round.
	maxSTUNServers = 4
	// stunWait bounds how long a punching signal waits for the first STUN
	// round, so that it lists our reflexive address; stunKickEvery is how
	// often the waiter asks the STUN loop to look at the session again.
	stunWait      = time.Second
	stunKickEvery = 100 * time.Millisecond
)

// awaitSTUN returns once a STUN round has ended since the transport
// started (at once when one has, or when there is no rendezvous), or
// after stunWait: a signal made before it would list no reflexive
// address, and a peer behind a NAT could then only probe our host
// addresses, which it cannot reach (docs/reachability.md, "Punching").
// It wakes the STUN loop rather than waiting for its backoff.
func (t *Transport) awaitSTUN(ctx context.Context) {
	if t.rdv == nil {
		return
	}
	limit := time.NewTimer(stunWait)
	defer limit.Stop()
	tick := time.NewTicker(stunKickEvery)
	defer tick.Stop()
	for {
		ok, ended := t.reach.learned()
		if ok {
			return
		}
		select {
		case t.stunKick <- struct{}{}:
		default:
		}
		select {
		case <-ended:
		case <-tick.C:
		case <-limit.C:
			t.log.Debug("no STUN answer yet: signalling without a reflexive address")
			return
		case <-ctx.Done():
			return
		}
	}
}

// stunLoop asks the rendezvous's STUN servers for our reflexive address
// from the QUIC socket, every stunInterval and whenever the session
// changes, until ctx ends. A kick (awaitSTUN) ends its wait early.
func (t *Transport) stunLoop(ctx context.Context) {
	var user string
	var last time.Time
	wait := func(d time.Duration) bool {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
			return true
		case <-t.stunKick:
			return true
		case <-ctx.Done():
			return false
		}
	}
	backoff := 500 * time.Millisecond
	for {
		b, err := t.rdv.STUN(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ports.ErrNoRendezvous):
			t.log.Debug("the directory offers no STUN")
			return
		case err != nil:
			if !errors.Is(err, ports.ErrNotRegistered) {
				t.log.Debug("stun binding unavailable", "err", err)
			}
			if !wait(backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 500 * time.Millisecond
		if b.Username != user || time.Since(last) >= stunInterval {
			user, last = b.Username, time.Now()
			t.bind(ctx, b)
		}
		if !wait(stunPoll) {
			return
		}
	}
}

// bind asks every server once and updates the NAT mapping and reflexive
// addresses; then the round has ended (awaitSTUN).
func (t *Transport) bind(ctx context.Context, b ports.STUNBinding) {
	defer t.reach.endRound()
	servers := b.Servers
	if len(servers) > maxSTUNServers {
		servers = servers[:maxSTUNServers]
	}
	mapped := make([]netip.AddrPort, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mapped[i], errs[i] = t.stunQuery(ctx, s, b.Username, b.Key)
		}()
	}
	wg.Wait()
	var got []netip.AddrPort
	for i, m := range mapped {
		if errs[i] != nil {
			t.log.Debug("stun binding failed", "server", servers[i], "err", errs[i])
			continue
		}
		got = append(got, m)
	}
	if len(got) == 0 {
		return
	}
	t.reach.set(t, mappingOf(got, t.hostAddrs()), got)
}

// mappingOf derives the NAT's mapping behaviour (RFC 4787 §4.1) from what
// the servers saw.
func mappingOf(mapped []netip.AddrPort, local []netip.AddrPort) domain.NATMapping {
	for _, m := range mapped {
		if slices.Contains(local, m) {
			return domain.NATNone
		}
	}
	if len(mapped) < 2 {
		return domain.NATUnknown
	}
	for _, m := range mapped[1:] {
		if m != mapped[0] {
			return domain.NATEndpointDependent
		}
	}
	return domain.NATEndpointIndependent
}

// hostAddrs are our host candidates as addresses.
func (t *Transport) hostAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, ep := range t.endpoints {
		if ap, err := netip.ParseAddrPort(ep); err == nil {
			out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}
	return out
}

// stunQuery sends one authenticated Binding request to server and returns
// the mapped address of an answer whose integrity checks with key.
func (t *Transport) stunQuery(ctx context.Context, server, user string, key []byte) (netip.AddrPort, error) {
	addr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", server, err)
	}
	integrity := stun.NewShortTermIntegrity(string(key))
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(user), integrity, stun.Fingerprint)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("build binding request: %w", err)
	}
	answers, cancel := t.stun.wait(req.TransactionID, addr)
	defer cancel()
	rto := stunRTO
	for try := 0; try < stunTries; try++ {
		if _, err := t.qt.WriteTo(req.Raw, addr); err != nil {
			return netip.AddrPort{}, fmt.Errorf("send binding request to %s: %w", server, err)
		}
		tm := time.NewTimer(rto)
		select {
		case raw := <-answers:
			tm.Stop()
			return parseBindingAnswer(raw, integrity)
		case <-ctx.Done():
			tm.Stop()
			return netip.AddrPort{}, ctx.Err()
		case <-tm.C:
		}
		rto *= 2
	}
	return netip.AddrPort{}, fmt.Errorf("no answer from %s after %d tries", server, stunTries)
}

// parseBindingAnswer checks an answer's class, integrity and fingerprint
// and returns its XOR-MAPPED-ADDRESS.
func parseBindingAnswer(raw []byte, integrity stun.MessageIntegrity) (netip.AddrPort, error) {
	m := &stun.Message{Raw: raw}
	if err := m.Decode(); err != nil {
		return netip.AddrPort{}, fmt.Errorf("decode binding answer: %w", err)
	}
	if m.Type.Method != stun.MethodBinding {
		return netip.AddrPort{}, fmt.Errorf("answer of method %s", m.Type.Method)
	}
	if m.Type.Class == stun.ClassErrorResponse {
		var code stun.ErrorCodeAttribute
		_ = code.GetFrom(m)
		return netip.AddrPort{}, fmt.Errorf("binding refused: %d %s", code.Code, code.Reason)
	}
	if m.Type.Class != stun.ClassSuccessResponse {
		return netip.AddrPort{}, fmt.Errorf("answer of class %s", m.Type.Class)
	}
	if err := integrity.Check(m); err != nil {
		return netip.AddrPort{}, fmt.Errorf("binding answer integrity: %w", err)
	}
	if err := stun.Fingerprint.Check(m); err != nil {
		return netip.AddrPort{}, fmt.Errorf("binding answer fingerprint: %w", err)
	}
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err != nil {
		return netip.AddrPort{}, fmt.Errorf("binding answer: %w", err)
	}
	ip, ok := netip.AddrFromSlice(xa.IP)
	if !ok || xa.Port <= 0 || xa.Port > 65535 {
		return netip.AddrPort{}, errors.New("binding answer: bad mapped address")
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port)), nil
}
