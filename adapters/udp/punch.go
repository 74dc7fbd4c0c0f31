package udp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/localnet"
	"github.com/chatx/chatx/ports"
)

// Hole-punching budgets (docs/reachability.md, "Budgets").
const (
	// punchLifetime is how long one session probes and waits.
	punchLifetime = 5 * time.Second
	// maxProbesPerCand bounds the probes sent to one candidate in a
	// session (their schedule is probeGaps).
	maxProbesPerCand = 10
	// maxSessions bounds the sessions (ours and the peers') at once.
	maxSessions = 16
	// maxRepliesPerSession bounds the replies one session sends (a
	// replayed probe from a forged source gets at most that many).
	maxRepliesPerSession = 64
	// signalWindow is how far a signal's timestamp may be from our clock.
	signalWindow = 30 * time.Second
	// maxSeenSessions bounds the session IDs remembered against replay.
	maxSeenSessions = 1024
	// signalBurst signals per sender within signalPer are taken.
	signalBurst = 8
	signalPer   = 10 * time.Second
	// maxSenders bounds the rate-limit table.
	maxSenders = 256
)

// probeGaps are the waits before each probe to one candidate: 10 probes
// over 3.6 s, dense at first (the other side's first probes open our NAT).
var probeGaps = [maxProbesPerCand]time.Duration{0, 100, 100, 100, 200, 300, 400, 600, 800, 1000}

type candState struct {
	sent     int
	next     time.Time
	answered bool
}

// punchSession is one attempt to open a path to a peer; all fields but the
// channels are guarded by puncher.mu.
type punchSession struct {
	id        [16]byte
	peer      domain.Identity
	initiator bool
	started   time.Time
	cands     map[netip.AddrPort]*candState
	order     []netip.AddrPort
	nonces    map[[16]byte]netip.AddrPort // probes awaiting a reply: where they went
	peerCands []candidate                 // what the peer's signal listed
	replies   int
	validOnce bool
	peerNAT   domain.NATMapping   // what the peer's signal said of its NAT
	answer    chan struct{}       // closed when the peer's ANSWER arrived (initiator)
	validated chan netip.AddrPort // the first address that answered with the right key
	done      chan struct{}
	closeOnce sync.Once
}

// puncher holds the sessions and the replay and rate state of signals.
type puncher struct {
	mu       sync.Mutex
	sessions map[[16]byte]*punchSession
	seen     map[[16]byte]time.Time
	senders  map[string][]time.Time
}

func (p *puncher) init() {
	p.sessions = make(map[[16]byte]*punchSession)
	p.seen = make(map[[16]byte]time.Time)
	p.senders = make(map[string][]time.Time)
}

var errTooManySessions = errors.New("too many punching sessions at once")

// open starts a session (id zero: a new random one).
func (p *puncher) open(id [16]byte, peer domain.Identity, initiator bool) (*punchSession, error) {
	if id == ([16]byte{}) {
		_, _ = rand.Read(id[:])
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.sessions) >= maxSessions {
		return nil, errTooManySessions
	}
	if _, dup := p.sessions[id]; dup {
		return nil, errors.New("session exists")
	}
	s := &punchSession{
		id: id, peer: peer, initiator: initiator, started: time.Now(),
		cands: make(map[netip.AddrPort]*candState), nonces: make(map[[16]byte]netip.AddrPort),
		validated: make(chan netip.AddrPort, 1), done: make(chan struct{}), answer: make(chan struct{}),
	}
	p.sessions[id] = s
	p.markSeenLocked(id)
	return s, nil
}

func (p *puncher) close(s *punchSession) {
	s.closeOnce.Do(func() {
		p.mu.Lock()
		delete(p.sessions, s.id)
		p.mu.Unlock()
		close(s.done)
	})
}

// markSeenLocked remembers a session ID against replay, forgetting those
// older than twice the signal window (a replay of those fails the
// timestamp check anyway).
func (p *puncher) markSeenLocked(id [16]byte) {
	now := time.Now()
	if len(p.seen) >= maxSeenSessions {
		for k, at := range p.seen {
			if now.Sub(at) > 2*signalWindow {
				delete(p.seen, k)
			}
		}
		if len(p.seen) >= maxSeenSessions {
			clear(p.seen)
		}
	}
	p.seen[id] = now
}

// allow applies the per-sender rate limit.
func (p *puncher) allow(sender []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	key := string(sender)
	if len(p.senders) >= maxSenders {
		clear(p.senders)
	}
	recent := p.senders[key][:0]
	for _, at := range p.senders[key] {
		if now.Sub(at) < signalPer {
			recent = append(recent, at)
		}
	}
	if len(recent) >= signalBurst {
		p.senders[key] = recent
		return false
	}
	p.senders[key] = append(recent, now)
	return true
}

// addCands adds probe targets to s (at most maxCandidates in all).
func (p *puncher) addCands(s *punchSession, addrs ...netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addCandsLocked(s, addrs...)
}

func (p *puncher) addCandsLocked(s *punchSession, addrs ...netip.AddrPort) {
	for _, a := range addrs {
		if _, ok := s.cands[a]; ok || len(s.order) >= maxCandidates {
			continue
		}
		s.cands[a] = &candState{next: time.Now()}
		s.order = append(s.order, a)
	}
}

// probeTargets filters a peer's signalled candidates to those we probe:
// public and loopback ones, private ones only when plausibly on our LAN;
// relay candidates are dialled by the relay stage, never probed.
func (t *Transport) probeTargets(cands []candidate) []netip.AddrPort {
	subnets := t.nets.Get()
	refl := t.reach.reflexive()
	var peerPublic []netip.Addr
	for _, c := range cands {
		if c.Kind != candRelay && domain.ScopeOf(c.Addr.Addr()) == domain.ScopePublic {
			peerPublic = append(peerPublic, c.Addr.Addr())
		}
	}
	sameNAT := false
	for _, r := range refl {
		for _, a := range peerPublic {
			if r.Addr() == a {
				sameNAT = true
			}
		}
	}
	var addrs []netip.AddrPort
	for _, c := range cands {
		if c.Kind != candRelay {
			addrs = append(addrs, c.Addr)
		}
	}
	loopbackOK := sameHost(addrs)
	var out []netip.AddrPort
	for _, c := range cands {
		if c.Kind == candRelay || c.Addr.Port() == 0 {
			continue
		}
		switch domain.ScopeOf(c.Addr.Addr()) {
		case domain.ScopePublic:
		case domain.ScopeLoopback:
			if !loopbackOK {
				continue
			}
		case domain.ScopePrivate:
			if !(sameNAT || len(refl) == 0 || localnet.Contains(subnets, c.Addr.Addr())) {
				continue
			}
		default:
			continue
		}
		out = append(out, c.Addr)
	}
	return out
}

// candList is a debug line's list of candidates.
func candList(cands []candidate) string {
	s := ""
	for i, c := range cands {
		if i > 0 {
			s += ", "
		}
		s += c.String()
	}
	return s
}

// ourCandidates are the candidates a signal of ours lists.
func (t *Transport) ourCandidates() []candidate {
	var out []candidate
	for _, a := range t.hostAddrs() {
		out = append(out, candidate{Kind: candHost, Addr: a})
	}
	for _, a := range t.reach.reflexive() {
		out = append(out, candidate{Kind: candSrflx, Addr: a})
	}
	if a, ok := t.relay.addr(); ok {
		out = append(out, candidate{Kind: candRelay, Addr: a})
	}
	if len(out) > maxCandidates {
		out = out[:maxCandidates]
	}
	return out
}

func (t *Transport) newSignal(typ byte, session [16]byte, to domain.Identity, cands []candidate) []byte {
	return signal{
		Type: typ, Session: session, From: t.me.Identity.PublicKey(), To: to.PublicKey(),
		At: time.Now(), NAT: t.reach.nat(), Cands: cands,
	}.marshal(t.me)
}

// punchPeer is the initiator's side: signal our candidates, probe the
// peer's, and dial QUIC to the first address that answered a probe with
// the peer's key. When one NAT maps per endpoint and the other does not,
// the birthday method runs beside (birthday.go); holdRelay, when not nil,
// is told until when it may still win, so that the relay stage waits.
func (t *Transport) punchPeer(ctx context.Context, to domain.Peer, holdRelay func(until time.Time)) (*pconn, error) {
	s, err := t.punch.open([16]byte{}, to.Identity, true)
	if err != nil {
		return nil, err
	}
	defer t.punch.close(s)
	// The signal must list our reflexive address: a peer behind a NAT
	// cannot reach our host addresses, and peer-reflexive discovery needs
	// one probe to get through first. Just after start-up STUN may not
	// have answered yet.
	t.awaitSTUN(ctx)
	// The directory's endpoints of the peer (its reflexive address among
	// them) are probed at once, before the signal goes out: our first
	// probes open our NAT towards the peer. The answer adds the rest.
	var known []candidate
	for _, a := range t.directCandidates(to) {
		known = append(known, candidate{Kind: candSrflx, Addr: a})
	}
	t.punch.addCands(s, t.probeTargets(known)...)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, punchLifetime)
	defer cancel()
	defer t.startProbing(ctx, s)()
	cands := t.ourCandidates()
	payload := t.newSignal(sigConnect, s.id, to.Identity, cands)
	t.punch.mu.Lock()
	probing := len(s.order)
	t.punch.mu.Unlock()
	t.log.Debug("punching", "peer", to.Name().String(), "probing", probing, "signalled", candList(cands))
	if err := t.rdv.Signal(ctx, to.Identity, payload); err != nil {
		return nil, fmt.Errorf("signal: %w", err)
	}
	var bg sync.WaitGroup
	defer func() { cancel(); bg.Wait() }() // the birthday stops with ctx
	type dialled struct {
		c   *pconn
		err error
	}
	var bday chan dialled
	answer := s.answer
	for {
		select {
		case <-answer:
			answer = nil
			t.punch.mu.Lock()
			peerNAT, peerCands := s.peerNAT, s.peerCands
			t.punch.mu.Unlock()
			switch birthdayRole(t.reach.nat(), peerNAT) {
			case "hard":
				bday = make(chan dialled, 1)
				if holdRelay != nil {
					holdRelay(time.Now().Add(birthdayBudget))
				}
				bg.Add(1)
				go func() {
					defer bg.Done()
					c, err := t.birthdayDial(ctx, parent, s, peerCands)
					bday <- dialled{c, err}
				}()
			case "easy":
				if holdRelay != nil {
					holdRelay(time.Now().Add(birthdayBudget))
				}
				bg.Add(1)
				go func() {
					defer bg.Done()
					t.spray(ctx, s, peerCands)
				}()
			}
			continue
		case r := <-bday:
			bday = nil
			if r.err == nil {
				return r.c, nil
			}
			t.log.Debug("birthday failed", "peer", to.Name().String(), "err", r.err)
			continue
		case addr := <-s.validated:
			cancel()
			conn, err := t.dialAddr(parent, addr, to.Identity)
			if err != nil {
				return nil, fmt.Errorf("dial punched %s: %w", addr, err)
			}
			c := &pconn{conn: conn, peer: to.Identity, dialledByMe: true, kind: kindOf(net.UDPAddrFromAddrPort(addr), false)}
			t.adopt(c)
			return c, nil
		case <-ctx.Done():
			t.punch.mu.Lock()
			n, sent := len(s.order), 0
			answered := len(s.peerCands) > 0
			for _, c := range s.cands {
				sent += c.sent
			}
			t.punch.mu.Unlock()
			if !answered {
				return nil, fmt.Errorf("no answer to our signal; %d probes to %d candidates, none answered", sent, n)
			}
			return nil, fmt.Errorf("%d probes to %d candidates, none answered with %s's key", sent, n, to.Name())
		}
	}
}

// startProbing runs probeLoop until ctx ends or stop is called; stop
// returns once the loop has.
func (t *Transport) startProbing(ctx context.Context, s *punchSession) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.probeLoop(ctx, s)
	}()
	return func() { cancel(); <-done }
}

// probeLoop sends the session's probes on schedule until ctx ends or the
// session closes.
func (t *Transport) probeLoop(ctx context.Context, s *punchSession) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	me := t.me.Identity.PublicKey()
	to := s.peer.PublicKey()
	for {
		type out struct {
			addr netip.AddrPort
			b    []byte
		}
		var due []out
		now := time.Now()
		t.punch.mu.Lock()
		for _, a := range s.order {
			c := s.cands[a]
			if c.answered || c.sent >= maxProbesPerCand || now.Before(c.next) {
				continue
			}
			pr := probe{Type: probeReq, Session: s.id, From: me, To: to}
			_, _ = rand.Read(pr.Nonce[:])
			s.nonces[pr.Nonce] = a
			c.sent++
			if c.sent < maxProbesPerCand {
				c.next = now.Add(probeGaps[c.sent] * time.Millisecond)
			}
			due = append(due, out{a, pr.marshal(t.me)})
		}
		t.punch.mu.Unlock()
		for _, d := range due {
			if _, err := t.qt.WriteTo(d.b, net.UDPAddrFromAddrPort(d.addr)); err != nil {
				t.log.Debug("sending probe", "to", d.addr.String(), "err", err)
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}

// handle takes a probe or reply off the socket (the demux goroutine).
func (p *puncher) handle(t *Transport, b []byte, from net.Addr) {
	pr, err := parseProbe(b)
	if err != nil {
		t.drops.drop(t, err.Error(), from)
		return
	}
	src, ok := addrPortOf(from)
	if !ok || !bytes.Equal(pr.To, t.me.Identity.PublicKey()) {
		t.drops.drop(t, "probe for another key", from)
		return
	}
	p.mu.Lock()
	s := p.sessions[pr.Session]
	if s == nil || !s.peer.SameKey(pr.From) {
		p.mu.Unlock()
		t.drops.drop(t, "probe of no session of ours", from)
		return
	}
	t.log.Debug("probe", "type", pr.Type, "from", src.String())
	switch pr.Type {
	case probeReq:
		if s.replies >= maxRepliesPerSession {
			p.mu.Unlock()
			t.drops.drop(t, "probe beyond the reply budget", from)
			return
		}
		s.replies++
		// Where the peer's probe came from may be a mapping we did not
		// know (peer-reflexive, RFC 8445 §7.2.5.3.1): probe it too.
		p.addCandsLocked(s, src)
		p.mu.Unlock()
		reply := probe{Type: probeReply, Session: s.id, From: t.me.Identity.PublicKey(), To: s.peer.PublicKey(), Echo: pr.Nonce}
		_, _ = rand.Read(reply.Nonce[:])
		if _, err := t.qt.WriteTo(reply.marshal(t.me), from); err != nil {
			t.log.Debug("sending probe reply", "to", src.String(), "err", err)
		}
	case probeReply:
		sentTo, ok := s.nonces[pr.Echo]
		if !ok || sentTo != src {
			p.mu.Unlock()
			t.drops.drop(t, "reply to no probe of ours from that address", from)
			return
		}
		delete(s.nonces, pr.Echo)
		if c := s.cands[src]; c != nil {
			c.answered = true
		}
		first := !s.validOnce
		s.validOnce = true
		p.mu.Unlock()
		if first {
			s.validated <- src
		}
	default:
		p.mu.Unlock()
	}
}

// signalLoop takes the signals peers send us through the rendezvous until
// ctx ends, re-subscribing while there is no session.
func (t *Transport) signalLoop(ctx context.Context) {
	backoff := 500 * time.Millisecond
	for {
		ch, err := t.rdv.Signals(ctx)
		if errors.Is(err, ports.ErrNoRendezvous) {
			return
		}
		if err == nil {
			backoff = 500 * time.Millisecond
			for sig := range ch {
				t.onSignal(ctx, sig)
			}
		}
		tm := time.NewTimer(backoff)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// onSignal checks one signal and acts on it: a connect request starts our
// side of the session, an answer feeds ours, a relay request is dialled.
func (t *Transport) onSignal(ctx context.Context, in ports.Signal) {
	from := in.From.Name().String()
	s, err := parseSignal(in.Payload)
	if err != nil {
		t.log.Warn("dropped signal", "from", from, "err", err)
		return
	}
	switch {
	case !in.From.SameKey(s.From):
		t.log.Warn("dropped signal: signed by another key than its sender's", "from", from)
		return
	case !bytes.Equal(s.To, t.me.Identity.PublicKey()):
		t.log.Warn("dropped signal: meant for another key", "from", from)
		return
	case time.Since(s.At).Abs() > signalWindow:
		t.log.Warn("dropped signal: stale", "from", from, "age", time.Since(s.At).Round(time.Second))
		return
	case !t.punch.allow(s.From):
		t.log.Warn("dropped signal: too many from this sender", "from", from)
		return
	}
	t.log.Debug("signal", "from", from, "type", s.Type, "candidates", len(s.Cands))
	vctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	err = t.verifier.VerifyPeer(vctx, in.From)
	cancel()
	if err != nil {
		t.log.Warn("dropped signal: sender refused", "from", from, "err", err)
		return
	}
	switch s.Type {
	case sigConnect:
		t.answerConnect(in.From, s)
	case sigAnswer:
		t.punch.mu.Lock()
		sess := t.punch.sessions[s.Session]
		if sess == nil || !sess.initiator || !sess.peer.SameKey(s.From) || sess.peerCands != nil {
			t.punch.mu.Unlock()
			t.log.Debug("dropped answer of no session of ours", "from", from)
			return
		}
		sess.peerCands = s.Cands
		if len(sess.peerCands) == 0 {
			sess.peerCands = []candidate{}
		}
		sess.peerNAT = s.NAT
		t.punch.addCandsLocked(sess, t.probeTargets(s.Cands)...)
		t.punch.mu.Unlock()
		close(sess.answer)
	case sigRelay, sigRelayBack:
		t.punch.mu.Lock()
		_, replay := t.punch.seen[s.Session]
		if !replay {
			t.punch.markSeenLocked(s.Session)
		}
		t.punch.mu.Unlock()
		if replay {
			t.log.Warn("dropped signal: replayed", "from", from)
			return
		}
		t.go_(func() { t.dialRelayed(in.From, s.Type, s.Cands) })
	}
}

// answerConnect is the responder's side: answer with our candidates and
// probe the initiator's at once.
func (t *Transport) answerConnect(peer domain.Identity, s signal) {
	t.punch.mu.Lock()
	_, replay := t.punch.seen[s.Session]
	t.punch.mu.Unlock()
	if replay {
		t.log.Warn("dropped signal: replayed", "from", peer.Name().String())
		return
	}
	sess, err := t.punch.open(s.Session, peer, false)
	if err != nil {
		t.log.Warn("dropped signal", "from", peer.Name().String(), "err", err)
		return
	}
	t.punch.mu.Lock()
	sess.peerCands = s.Cands
	t.punch.mu.Unlock()
	t.punch.addCands(sess, t.probeTargets(s.Cands)...)
	t.go_(func() {
		defer t.punch.close(sess)
		ctx, cancel := context.WithTimeout(t.ctx, punchLifetime)
		defer cancel()
		defer t.startProbing(ctx, sess)()
		t.awaitSTUN(ctx)
		cands := t.ourCandidates()
		t.log.Debug("answering", "peer", peer.Name().String(), "signalled", candList(cands))
		payload := t.newSignal(sigAnswer, sess.id, peer, cands)
		if err := t.rdv.Signal(ctx, peer, payload); err != nil {
			t.log.Debug("answering signal", "to", peer.Name().String(), "err", err)
			cancel()
			return
		}
		switch birthdayRole(t.reach.nat(), s.NAT) {
		case "hard":
			if _, err := t.birthdayDial(ctx, t.ctx, sess, s.Cands); err != nil {
				t.log.Debug("birthday failed", "peer", peer.Name().String(), "err", err)
			}
		case "easy":
			t.spray(ctx, sess, s.Cands)
		}
		<-ctx.Done()
	})
}
