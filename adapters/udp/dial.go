package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/localnet"
	"github.com/chatx/chatx/ports"
)

// maxCandidates bounds the candidates taken from a peer (its endpoints or
// a signal).
const maxCandidates = 16

// connect returns the preferred live connection to the peer, reaching it
// when there is none (docs/reachability.md, "Connecting"): the direct race
// over its candidates, hole punching through the rendezvous ~300 ms later
// (at once when nothing is worth dialling), then the relay. reused says
// the connection was there already. Concurrent calls for one peer share
// one attempt.
func (t *Transport) connect(ctx context.Context, to domain.Peer) (*pconn, bool, error) {
	key := to.Identity.PublicKey()
	if c, _ := t.current(key); c != nil {
		return c, true, nil
	}
	p := t.entry(key)
	if p == nil {
		return nil, false, net.ErrClosed
	}
	select {
	case <-p.dial:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	defer func() { p.dial <- struct{}{} }()
	if c, _ := t.current(key); c != nil {
		return c, true, nil
	}
	c, err := t.reachPeer(ctx, to)
	return c, false, err
}

// stageResult is how one way of reaching a peer ended; nil err means it
// adopted a connection.
type stageResult struct {
	stage string
	c     *pconn // what the stage adopted, if it knows
	err   error
}

func (t *Transport) reachPeer(ctx context.Context, to domain.Peer) (*pconn, error) {
	key := to.Identity.PublicKey()
	name := to.Name().String()
	begun := time.Now()
	cctx, cancel := context.WithTimeout(ctx, t.cfg.ConnectTimeout)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	results := make(chan stageResult, 3)
	running := 0
	start := func(stage string, f func(context.Context) (*pconn, error)) {
		running++
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := f(cctx)
			results <- stageResult{stage, c, err}
		}()
	}
	direct := t.directCandidates(to)
	if len(direct) == 0 && t.rdv == nil {
		err := fmt.Errorf("%w: %s has no file endpoint", domain.ErrPeerOffline, name)
		t.diag.attempt(to.Name(), domain.Path{}, err, "no candidate")
		return nil, err
	}
	if len(direct) > 0 {
		start("direct", func(ctx context.Context) (*pconn, error) { return t.raceDirect(ctx, to, direct) })
	}
	never := (<-chan time.Time)(nil)
	punchC, relayC := never, never
	bothED := t.reach.nat() == domain.NATEndpointDependent && to.Endpoints.NAT == domain.NATEndpointDependent
	if t.rdv != nil {
		first := t.cfg.PunchAfter
		if len(direct) == 0 {
			first = 0
		}
		if bothED {
			// Punching cannot open two endpoint-dependent NATs.
			relayC = time.After(first)
		} else {
			punchC = time.After(first)
			relayC = time.After(first + t.cfg.RelayAfter)
		}
	}
	// A birthday (birthday.go) that started holds the relay back until it
	// had its chance.
	var relayHeld atomic.Int64 // unix nanoseconds
	holdRelay := func(until time.Time) { relayHeld.Store(until.UnixNano()) }
	startPunch := func() {
		punchC = never
		start("punch", func(ctx context.Context) (*pconn, error) { return t.punchPeer(ctx, to, holdRelay) })
	}
	startRelay := func() {
		relayC = never
		start("relay", func(ctx context.Context) (*pconn, error) { return nil, t.relayPeer(ctx, to) })
	}

	_, arrived := t.current(key)
	var errs []error
	for {
		if c, _ := t.current(key); c != nil {
			t.log.Debug("connected", "peer", name, "path", pathOf(c).String(), "after", time.Since(begun).Round(time.Millisecond))
			if c.kind == domain.PathRelayed && !bothED && t.rdv != nil {
				t.upgradeLater(to)
			}
			return c, nil
		}
		if running == 0 && punchC == nil && relayC == nil {
			break
		}
		if running == 0 {
			// What runs failed: start the next stage without waiting.
			if punchC != nil {
				startPunch()
			} else {
				startRelay()
			}
			continue
		}
		select {
		case <-arrived:
			_, arrived = t.current(key)
		case r := <-results:
			running--
			if r.err != nil {
				t.log.Debug("connect stage failed", "peer", name, "stage", r.stage, "after", time.Since(begun).Round(time.Millisecond), "err", r.err)
				errs = append(errs, fmt.Errorf("%s: %w", r.stage, r.err))
			} else if c, _ := t.current(key); c == nil && r.c != nil {
				// The peer closed it at once (it refused us, say): the
				// caller's stream on it reports why.
				return r.c, nil
			}
		case <-punchC:
			startPunch()
		case <-relayC:
			if wait := time.Until(time.Unix(0, relayHeld.Swap(0))); wait > 0 && running > 0 {
				relayC = time.After(wait)
				continue
			}
			startRelay()
		case <-cctx.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("no path within %s", t.cfg.ConnectTimeout))
			punchC, relayC = nil, nil
			running = 0
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	err := t.unreachable(to, errs)
	return nil, err
}

// unreachable makes the error of a failed connect and reports it.
func (t *Transport) unreachable(to domain.Peer, errs []error) error {
	var keyErr *domain.KeyChangedError
	var err error
	if len(errs) == 0 {
		errs = []error{errors.New("the connection closed as soon as it was made")}
	}
	joined := errors.Join(errs...)
	switch {
	case errors.As(joined, &keyErr):
		err = keyErr
	case t.rdv == nil:
		err = fmt.Errorf("%w: %s: %w", domain.ErrPeerOffline, to.Name(), joined)
	case errors.Is(joined, domain.ErrPeerOffline): // the directory says it has no live session
		err = fmt.Errorf("%w: %s: %w", domain.ErrPeerOffline, to.Name(), joined)
	default:
		err = fmt.Errorf("%w: %s: %w", ports.ErrUnreachable, to.Name(), joined)
	}
	t.diag.attempt(to.Name(), domain.Path{}, err, reasonOf(errs))
	t.reach.cannotReach(t, to.Name(), reasonOf(errs))
	return err
}

// reasonOf is a short reason for the log line and the doctor.
func reasonOf(errs []error) string {
	if len(errs) == 0 {
		return "no candidate, no rendezvous"
	}
	s := ""
	for i, e := range errs {
		if i > 0 {
			s += "; "
		}
		s += e.Error()
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// directCandidates are the peer's file endpoints worth dialling: public
// ones; private ones only when the peer is plausibly on our LAN (an
// address in one of our interface subnets, the same reflexive address as
// ours, or no reflexive address known at all); loopback when the peer
// lists it. At most maxCandidates, duplicates removed.
func (t *Transport) directCandidates(to domain.Peer) []netip.AddrPort {
	var all []netip.AddrPort
	seen := map[netip.AddrPort]bool{}
	for _, ep := range to.Endpoints.File {
		ap, err := netip.ParseAddrPort(ep)
		if err != nil {
			ua, rerr := net.ResolveUDPAddr("udp", ep)
			if rerr != nil {
				continue
			}
			ap = ua.AddrPort()
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if ap.Port() == 0 || seen[ap] {
			continue
		}
		seen[ap] = true
		all = append(all, ap)
	}
	peerPublic := map[netip.Addr]bool{}
	for _, ap := range all {
		if domain.ScopeOf(ap.Addr()) == domain.ScopePublic {
			peerPublic[ap.Addr()] = true
		}
	}
	subnets := t.nets.Get()
	refl := t.reach.reflexive()
	sameNAT := false
	for _, r := range refl {
		if peerPublic[r.Addr()] {
			sameNAT = true
		}
	}
	loopbackOK := sameHost(all)
	var out []netip.AddrPort
	for _, ap := range all {
		switch domain.ScopeOf(ap.Addr()) {
		case domain.ScopePublic:
		case domain.ScopeLoopback:
			if !loopbackOK {
				continue
			}
		case domain.ScopePrivate:
			if !(sameNAT || len(refl) == 0 || localnet.Contains(subnets, ap.Addr())) {
				continue
			}
		default:
			continue
		}
		out = append(out, ap)
		if len(out) == maxCandidates {
			break
		}
	}
	return out
}

// sameHost reports whether a peer listing cands may be on this host, so
// that its loopback candidates are worth dialling: all of them are
// loopback (a loopback-only setup), or one is an address of ours.
func sameHost(cands []netip.AddrPort) bool {
	all := true
	for _, c := range cands {
		if domain.ScopeOf(c.Addr()) != domain.ScopeLoopback {
			all = false
		}
	}
	if all {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		for _, c := range cands {
			if c.Addr() == ip.Unmap() {
				return true
			}
		}
	}
	return false
}

// raceDirect dials the candidates with staggered starts (the next one
// starts DialStagger after the previous, or at once when it failed) and
// adopts the first connection that proves the peer. An address may be
// stale and belong to someone else now, so a key mismatch does not stop
// the race; it is returned (a *domain.KeyChangedError) only when no
// candidate succeeded.
func (t *Transport) raceDirect(ctx context.Context, to domain.Peer, cands []netip.AddrPort) (*pconn, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	type result struct {
		addr netip.AddrPort
		conn *quic.Conn
		err  error
	}
	results := make(chan result, len(cands))
	var won atomic.Bool
	next, pending := 0, 0
	startNext := func() {
		addr := cands[next]
		next++
		pending++
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := t.dialAddr(ctx, addr, to.Identity)
			if err == nil && !won.CompareAndSwap(false, true) {
				_ = conn.CloseWithError(connClosed, "another path won")
				conn, err = nil, errors.New("another path won")
			}
			results <- result{addr, conn, err}
		}()
	}
	stagger := time.NewTimer(t.cfg.DialStagger)
	defer stagger.Stop()
	startNext()
	var errs []error
	var keyErr error
	for pending > 0 || next < len(cands) {
		var tick <-chan time.Time
		if next < len(cands) {
			tick = stagger.C
		}
		select {
		case <-tick:
			startNext()
			stagger.Reset(t.cfg.DialStagger)
		case r := <-results:
			pending--
			if r.err == nil {
				c := &pconn{conn: r.conn, peer: to.Identity, dialledByMe: true, kind: kindOf(net.UDPAddrFromAddrPort(r.addr), false)}
				t.adopt(c)
				return c, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var kc *domain.KeyChangedError
			if errors.As(r.err, &kc) || errors.Is(r.err, ErrPeerMismatch) {
				t.log.Warn("file endpoint presented another identity: refused", "peer", to.Name().String(), "addr", r.addr.String(), "err", r.err)
				if keyErr == nil {
					keyErr = fmt.Errorf("dial %s at %s: %w", to.Name(), r.addr, r.err)
				}
			} else {
				errs = append(errs, fmt.Errorf("dial %s: %w", r.addr, r.err))
			}
			if pending == 0 && next < len(cands) {
				startNext()
				stagger.Reset(t.cfg.DialStagger)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if keyErr != nil {
		return nil, keyErr
	}
	return nil, errors.Join(errs...)
}

// dialAddr dials QUIC to addr from the main socket and checks that the
// server is want. A refused certificate is returned as it is (a
// *domain.KeyChangedError or ErrPeerMismatch).
func (t *Transport) dialAddr(ctx context.Context, addr netip.AddrPort, want domain.Identity) (*quic.Conn, error) {
	return t.dialOn(ctx, t.qt, net.UDPAddrFromAddrPort(addr), want)
}

func (t *Transport) dialOn(ctx context.Context, qt *quic.Transport, addr net.Addr, want domain.Identity) (*quic.Conn, error) {
	return t.dialALPN(ctx, qt, addr, want, ALPN)
}

// dialALPN is dialOn for the application protocol alpn (ALPN or
// ALPNStripe).
func (t *Transport) dialALPN(ctx context.Context, qt *quic.Transport, addr net.Addr, want domain.Identity, alpn string) (*quic.Conn, error) {
	var refused certError
	dctx, cancel := context.WithTimeout(ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	conn, err := qt.Dial(dctx, addr, clientTLSFor(t.cert, want, &refused, alpn), t.qconf)
	if err == nil {
		return conn, nil
	}
	if cerr := refused.get(); cerr != nil {
		return nil, cerr
	}
	return nil, err
}

// Upgrading a relayed connection: punching is tried again every
// upgradeEvery, at most upgradeTries times, while the peer's connection is
// relayed. A punched connection is preferred (a better path) at both ends;
// the relayed one retires once no stream runs on it.
const (
	upgradeEvery = 20 * time.Second
	upgradeTries = 6
)

// upgradeLater starts the upgrade loop for the peer, once at a time.
func (t *Transport) upgradeLater(to domain.Peer) {
	p := t.entry(to.Identity.PublicKey())
	if p == nil {
		return
	}
	t.mu.Lock()
	if p.upgrading {
		t.mu.Unlock()
		return
	}
	p.upgrading = true
	t.mu.Unlock()
	t.go_(func() {
		defer func() {
			t.mu.Lock()
			p.upgrading = false
			t.mu.Unlock()
		}()
		for range upgradeTries {
			tm := time.NewTimer(upgradeEvery)
			select {
			case <-tm.C:
			case <-t.ctx.Done():
				tm.Stop()
				return
			}
			c, _ := t.current(to.Identity.PublicKey())
			if c == nil || c.kind != domain.PathRelayed {
				return
			}
			_, err := t.punchPeer(t.ctx, to, nil)
			if err == nil {
				t.log.Info("moved off the relay", "peer", to.Name().String())
				return
			}
			t.log.Debug("still relayed", "peer", to.Name().String(), "err", err)
		}
	})
}
