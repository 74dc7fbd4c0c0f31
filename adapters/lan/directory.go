package lan

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.Directory = (*Directory)(nil)

// Limits of docs/lan-discovery.md: every table a stranger on the LAN can
// grow is bounded.
const (
	MaxPeers          = 1024 // names remembered
	MaxSources        = 256  // source addresses rate-limited separately
	MaxNamesPerSource = 16   // names one source address may announce
	MaxPeerCandidates = 16   // addresses remembered per peer and kind
)

// Config tunes a Directory. Zero fields take the defaults.
type Config struct {
	// Port, Group4 and Group6 are where announcements go (DefaultPort,
	// DefaultGroup4, DefaultGroup6).
	Port           int
	Group4, Group6 string
	// Interval is how often we announce (default 30 s, jittered ±10 %).
	Interval time.Duration
	// Expiry is how long a peer (and each of its addresses) stays without
	// being heard (default 3 × Interval).
	Expiry time.Duration
	// SourceRate and SourceBurst bound the datagrams handled per source
	// address: SourceRate a second on average, SourceBurst at once
	// (defaults 2 and 32).
	SourceRate  float64
	SourceBurst float64
	// WatchBuffer is the events a Watch channel holds before its reader
	// loses events and gets a Resync (default 256).
	WatchBuffer int
}

// Enabled says whether local discovery runs (cmd's --lan).
type Enabled bool

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.Expiry <= 0 {
		c.Expiry = 3 * c.Interval
	}
	if c.SourceRate <= 0 {
		c.SourceRate = 2
	}
	if c.SourceBurst <= 0 {
		c.SourceBurst = 32
	}
	if c.WatchBuffer <= 0 {
		c.WatchBuffer = 256
	}
	return c
}

// Directory is local discovery as a ports.Directory. It listens from the
// moment it is built; it announces from Register to Unregister. Close
// says goodbye if needed, stops every goroutine and closes the socket.
type Directory struct {
	conn     Conn
	cfg      Config
	log      *slog.Logger
	instance uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // asks the announcer for an early round

	closeOnce sync.Once

	mu        sync.Mutex
	me        domain.LocalIdentity
	eps       domain.Endpoints
	seq       uint64
	annCancel context.CancelFunc
	annDone   chan struct{}
	peers     map[string]*entry // by name key
	sources   map[netip.Addr]*source
	subs      map[*subscriber]struct{}
	conflicts int // conflicting announcements seen, logged at the first and every 100th
}

// entry is what was heard of one name.
type entry struct {
	id       domain.Identity
	instance uint64
	seq      uint64
	sentAt   time.Time // the accepted packet's timestamp
	heard    time.Time // our clock when last heard
	online   bool
	src      netip.Addr
	cands    map[string]cand // by kind and address
	eps      domain.Endpoints
}

type cand struct {
	kind CandidateKind
	addr netip.AddrPort
	seen time.Time
	from netip.Addr // the source address of the announcement that carried it
}

// source is the rate-limit state of one source address.
type source struct {
	tokens float64
	last   time.Time
	names  map[string]bool
}

// NewDirectory opens the multicast sockets and starts listening. The
// cleanup is Close.
func NewDirectory(cfg Config, logger *slog.Logger) (*Directory, func(), error) {
	conn, err := NewConn(cfg.Port, cfg.Group4, cfg.Group6, logger)
	if err != nil {
		return nil, nil, err
	}
	d := NewDirectoryOn(conn, cfg, logger)
	return d, d.Close, nil
}

// NewDirectoryOn builds a directory on conn (tests pass a fake), which it
// owns and closes.
func NewDirectoryOn(conn Conn, cfg Config, logger *slog.Logger) *Directory {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	_, _ = crand.Read(b[:])
	ctx, cancel := context.WithCancel(context.Background())
	d := &Directory{conn: conn, cfg: cfg.withDefaults(), log: logger.With("adapter", "lan"),
		instance: binary.BigEndian.Uint64(b[:]), ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1),
		peers: make(map[string]*entry), sources: make(map[netip.Addr]*source), subs: make(map[*subscriber]struct{})}
	d.wg.Add(2)
	go d.receive()
	go d.sweep()
	return d
}

// Register starts announcing me at the endpoints of eps that are
// addresses of the interface each announcement leaves on (loopback,
// private or link-local only). Called again, it updates what is announced
// and announces at once. It fails only when the directory is closed.
func (d *Directory) Register(_ context.Context, me domain.LocalIdentity, eps domain.Endpoints) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return fmt.Errorf("lan register: %w", net.ErrClosed)
	}
	d.me, d.eps = me, domain.Endpoints{Link: slices.Clone(eps.Link), File: slices.Clone(eps.File)}
	if d.annCancel == nil {
		actx, cancel := context.WithCancel(d.ctx)
		d.annCancel, d.annDone = cancel, make(chan struct{})
		d.wg.Add(1)
		go d.announce(actx, d.annDone)
	} else {
		d.kickLocked()
	}
	return nil
}

func (d *Directory) kickLocked() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Unregister stops announcing and sends a signed goodbye.
func (d *Directory) Unregister(_ context.Context) error {
	d.mu.Lock()
	cancel, done := d.annCancel, d.annDone
	d.annCancel, d.annDone = nil, nil
	d.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return d.sendRound(TypeGoodbye)
}

// announce sends a round now and every Interval (jittered), and early when
// kicked (a newcomer was heard), at most once a tenth of the interval.
func (d *Directory) announce(ctx context.Context, done chan struct{}) {
	defer d.wg.Done()
	defer close(done)
	minGap := min(time.Second, d.cfg.Interval/10)
	var last time.Time
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
			if wait := minGap - time.Since(last); wait > 0 {
				t.Reset(wait) // the timer sends the round
				continue
			}
			t.Stop()
		}
		if err := d.sendRound(TypeAnnounce); err != nil {
			d.log.Debug("lan: announce", "err", err)
		}
		last = time.Now()
		jitter := time.Duration(rand.Int64N(int64(d.cfg.Interval)/5+1)) - d.cfg.Interval/10
		t.Reset(d.cfg.Interval + jitter)
	}
}

// sendRound sends one announcement (or goodbye) per interface.
func (d *Directory) sendRound(typ PacketType) error {
	d.mu.Lock()
	me, eps := d.me, d.eps
	d.seq++
	seq := d.seq
	d.mu.Unlock()
	if me.IsZero() {
		return nil
	}
	ifs, err := d.conn.Interfaces()
	if err != nil {
		return err
	}
	var errs []error
	for _, ifc := range ifs {
		cands := candidatesOn(ifc, eps)
		if len(cands) == 0 {
			continue
		}
		b, err := Encode(me, Packet{Type: typ, Instance: d.instance, Sequence: seq, Time: time.Now(), Candidates: cands})
		if err != nil {
			return err
		}
		if err := d.conn.Send(b, ifc); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// candidatesOn picks the endpoints whose address belongs to ifc and may be
// announced (loopback, private, link-local).
func candidatesOn(ifc Interface, eps domain.Endpoints) []Candidate {
	var out []Candidate
	add := func(kind CandidateKind, list []string) {
		for _, s := range list {
			ap, err := netip.ParseAddrPort(s)
			if err != nil {
				continue
			}
			ip := ap.Addr().WithZone("").Unmap()
			if !announceable(ip) || !slices.Contains(ifc.Addrs, ip) {
				continue
			}
			out = append(out, Candidate{Kind: kind, Addr: netip.AddrPortFrom(ip, ap.Port())})
		}
	}
	add(KindLink, eps.Link)
	add(KindFile, eps.File)
	if len(out) > MaxCandidates {
		out = out[:MaxCandidates]
	}
	return out
}

func announceable(ip netip.Addr) bool {
	switch domain.ScopeOf(ip) {
	case domain.ScopeLoopback, domain.ScopePrivate, domain.ScopeLinkLocal:
		return true
	}
	return false
}

// receive handles datagrams until the directory closes.
func (d *Directory) receive() {
	defer d.wg.Done()
	for {
		r, err := d.conn.Receive(d.ctx)
		if err != nil {
			if d.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		d.handle(r, time.Now())
	}
}

// allowLocked takes a token from src's bucket.
func (d *Directory) allowLocked(src netip.Addr, now time.Time) (*source, bool) {
	s := d.sources[src]
	if s == nil {
		if len(d.sources) >= MaxSources {
			var oldest netip.Addr
			var at time.Time
			for a, o := range d.sources {
				if at.IsZero() || o.last.Before(at) {
					oldest, at = a, o.last
				}
			}
			delete(d.sources, oldest)
		}
		s = &source{tokens: d.cfg.SourceBurst, last: now, names: make(map[string]bool)}
		d.sources[src] = s
	}
	s.tokens = min(d.cfg.SourceBurst, s.tokens+now.Sub(s.last).Seconds()*d.cfg.SourceRate)
	s.last = now
	if s.tokens < 1 {
		return s, false
	}
	s.tokens--
	return s, true
}

// handle checks one datagram and updates the table.
func (d *Directory) handle(r Received, now time.Time) {
	if len(r.Data) > MaxPacketSize {
		return
	}
	d.mu.Lock()
	_, ok := d.allowLocked(r.Src, now)
	d.mu.Unlock()
	if !ok {
		return
	}
	p, err := Decode(r.Data, now)
	if err != nil {
		d.log.Debug("lan: dropped a datagram", "src", r.Src.String(), "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return
	}
	if !d.me.IsZero() && p.Identity.Name().Equal(d.me.Name()) {
		if !p.Identity.SameKey(d.me.PublicKey()) {
			d.conflictLocked(p, "our own name")
		}
		return // our own echo, or someone claiming our name
	}
	k := p.Identity.Name().Key()
	e := d.peers[k]
	src := d.sources[r.Src]
	if src == nil {
		return // forgotten since it was allowed: more sources than we track
	}
	switch {
	case e == nil:
		if p.Type == TypeGoodbye {
			return
		}
		if !src.names[k] && len(src.names) >= MaxNamesPerSource {
			d.conflictLocked(p, "too many names from one address")
			return
		}
		if len(d.peers) >= MaxPeers && !d.evictOfflineLocked() {
			d.conflictLocked(p, "peer table full")
			return
		}
		e = &entry{cands: make(map[string]cand)}
		d.peers[k] = e
	case !e.id.SameKey(p.Identity.PublicKey()):
		if e.online {
			// First heard wins while it is heard: the LAN binds no names.
			d.conflictLocked(p, "another key holds the name on the LAN")
			return
		}
		*e = entry{cands: make(map[string]cand)}
	case p.Instance == e.instance && p.Sequence < e.seq:
		return // replayed or reordered
	case p.Instance != e.instance && !p.Time.After(e.sentAt):
		return // an older instance, replayed
	}
	src.names[k] = true
	newcomer := e.instance != p.Instance || !e.online
	if e.instance != p.Instance {
		clear(e.cands) // a new run listens elsewhere
	}
	e.id, e.instance, e.seq, e.sentAt, e.heard, e.src = p.Identity, p.Instance, p.Sequence, p.Time, now, r.Src
	wasOnline := e.online
	if p.Type == TypeGoodbye {
		e.online = false
		clear(e.cands)
	} else {
		e.online = true
		// What the sender now announces from this address replaces what
		// it announced from there before (it moved); other addresses'
		// announcements (its other interfaces) keep theirs.
		for k, c := range e.cands {
			if c.from == r.Src {
				delete(e.cands, k)
			}
		}
		for _, c := range p.Candidates {
			d.addCandLocked(e, c, r, now)
		}
	}
	eps := endpointsOf(e)
	if wasOnline != e.online || !slices.Equal(eps.Link, e.eps.Link) || !slices.Equal(eps.File, e.eps.File) {
		e.eps = eps
		d.emitLocked(ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: peerOf(e)})
	}
	if newcomer && e.online && d.annCancel != nil {
		d.kickLocked() // let the newcomer hear us without waiting a whole interval
	}
}

// addCandLocked remembers one candidate if it may be dialled from here:
// loopback only when it came over a loopback interface, IPv6 link-local
// with the zone of the interface it came by.
func (d *Directory) addCandLocked(e *entry, c Candidate, r Received, now time.Time) {
	via := r.Via
	ip := c.Addr.Addr()
	switch domain.ScopeOf(ip) {
	case domain.ScopeLoopback:
		if !via.Loopback {
			return
		}
	case domain.ScopePrivate:
	case domain.ScopeLinkLocal:
		if ip.Is6() {
			if via.Name == "" {
				return
			}
			ip = ip.WithZone(via.Name)
		}
	default:
		return // public addresses are the registry's to vouch for
	}
	ap := netip.AddrPortFrom(ip, c.Addr.Port())
	key := fmt.Sprint(c.Kind, "/", ap)
	if _, ok := e.cands[key]; !ok {
		n, oldestKey, oldest := 0, "", now
		for k, o := range e.cands {
			if o.kind == c.Kind {
				n++
				if !o.seen.After(oldest) {
					oldestKey, oldest = k, o.seen
				}
			}
		}
		if n >= MaxPeerCandidates {
			delete(e.cands, oldestKey)
		}
	}
	e.cands[key] = cand{kind: c.Kind, addr: ap, seen: now, from: r.Src}
}

// endpointsOf orders a peer's candidates: loopback, private, link-local.
func endpointsOf(e *entry) domain.Endpoints {
	cs := make([]cand, 0, len(e.cands))
	for _, c := range e.cands {
		cs = append(cs, c)
	}
	rank := func(c cand) int {
		switch domain.ScopeOf(c.addr.Addr()) {
		case domain.ScopeLoopback:
			return 0
		case domain.ScopePrivate:
			return 1
		}
		return 2
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if r := cmp.Compare(rank(a), rank(b)); r != 0 {
			return r
		}
		return cmp.Compare(a.addr.String(), b.addr.String())
	})
	var eps domain.Endpoints
	for _, c := range cs {
		if c.kind == KindLink {
			eps.Link = append(eps.Link, c.addr.String())
		} else {
			eps.File = append(eps.File, c.addr.String())
		}
	}
	return eps
}

func peerOf(e *entry) domain.Peer {
	return domain.Peer{Identity: e.id, Online: e.online, LastSeen: e.heard,
		Endpoints: domain.Endpoints{Link: slices.Clone(e.eps.Link), File: slices.Clone(e.eps.File)}}
}

func (d *Directory) conflictLocked(p Packet, why string) {
	if d.conflicts++; d.conflicts%100 == 1 {
		d.log.Warn("lan: announcement ignored", "peer", p.Identity.Name().String(),
			"key", p.Identity.Fingerprint().Short(), "reason", why, "ignored", d.conflicts)
	}
}

// evictOfflineLocked forgets the offline peer heard least recently.
func (d *Directory) evictOfflineLocked() bool {
	var victim string
	var at time.Time
	for k, e := range d.peers {
		if !e.online && (victim == "" || e.heard.Before(at)) {
			victim, at = k, e.heard
		}
	}
	if victim == "" {
		return false
	}
	delete(d.peers, victim)
	return true
}

// sweep expires addresses and peers not heard for Expiry, forgets offline
// peers after Expiry + MaxClockSkew (until then their last sequence stops
// replays), and retries Resyncs owed to watchers.
func (d *Directory) sweep() {
	defer d.wg.Done()
	t := time.NewTicker(max(d.cfg.Expiry/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case now := <-t.C:
			d.expire(now)
		}
	}
}

func (d *Directory) expire(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, e := range d.peers {
		if !e.online {
			if now.Sub(e.heard) > d.cfg.Expiry+MaxClockSkew {
				delete(d.peers, k)
			}
			continue
		}
		for ck, c := range e.cands {
			if now.Sub(c.seen) > d.cfg.Expiry {
				delete(e.cands, ck)
			}
		}
		if now.Sub(e.heard) > d.cfg.Expiry {
			e.online = false
			clear(e.cands)
		}
		eps := endpointsOf(e)
		if !e.online || !slices.Equal(eps.Link, e.eps.Link) || !slices.Equal(eps.File, e.eps.File) {
			e.eps = eps
			d.emitLocked(ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: peerOf(e)})
		}
	}
	for a, s := range d.sources {
		if now.Sub(s.last) > d.cfg.Expiry+MaxClockSkew {
			delete(d.sources, a)
		}
	}
	for s := range d.subs {
		s.flush()
	}
}

// Lookup returns what was heard of name; domain.ErrUnknownPeer if nothing.
func (d *Directory) Lookup(_ context.Context, name domain.Username) (domain.Peer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.peers[name.Key()]
	if e == nil {
		return domain.Peer{}, fmt.Errorf("lan lookup %s: %w", name, domain.ErrUnknownPeer)
	}
	return peerOf(e), nil
}

// Online lists the peers heard within Expiry.
func (d *Directory) Online(_ context.Context) ([]domain.Peer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return nil, fmt.Errorf("lan online: %w", net.ErrClosed)
	}
	return d.onlineLocked(), nil
}

func (d *Directory) onlineLocked() []domain.Peer {
	var out []domain.Peer
	for _, e := range d.peers {
		if e.online {
			out = append(out, peerOf(e))
		}
	}
	return out
}

// subscriber is one Watch stream; it never blocks the directory.
type subscriber struct {
	ch   chan ports.DirectoryEvent
	lost bool
}

func (s *subscriber) offer(ev ports.DirectoryEvent) {
	s.flush()
	if s.lost {
		return
	}
	select {
	case s.ch <- ev:
	default:
		s.lost = true
	}
}

// flush sends the Resync a reader that fell behind is owed, if there is room.
func (s *subscriber) flush() {
	if !s.lost {
		return
	}
	select {
	case s.ch <- ports.DirectoryEvent{Kind: ports.Resync}:
		s.lost = false
	default:
	}
}

func (d *Directory) emitLocked(ev ports.DirectoryEvent) {
	for s := range d.subs {
		s.offer(ev)
	}
}

// Watch streams Connected (the LAN is always "reachable"), the peers
// online now, then every change, until ctx is done or the directory closes.
func (d *Directory) Watch(ctx context.Context) (<-chan ports.DirectoryEvent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return nil, fmt.Errorf("lan watch: %w", net.ErrClosed)
	}
	online := d.onlineLocked()
	s := &subscriber{ch: make(chan ports.DirectoryEvent, max(d.cfg.WatchBuffer, len(online)+1))}
	s.offer(ports.DirectoryEvent{Kind: ports.Connected})
	for _, p := range online {
		s.offer(ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: p})
	}
	d.subs[s] = struct{}{}
	stop := context.AfterFunc(ctx, func() { d.unsubscribe(s) })
	d.wg.Add(1)
	go func() { // ends the stream when the directory closes first
		defer d.wg.Done()
		select {
		case <-ctx.Done():
		case <-d.ctx.Done():
			if stop() {
				d.unsubscribe(s)
			}
		}
	}()
	return s.ch, nil
}

func (d *Directory) unsubscribe(s *subscriber) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.subs[s]; ok {
		delete(d.subs, s)
		close(s.ch)
	}
}

// Close says goodbye if we were announcing, stops the goroutines, closes
// the socket and ends every Watch stream. It is idempotent.
func (d *Directory) Close() { d.closeOnce.Do(d.close) }

func (d *Directory) close() {
	if err := d.Unregister(context.Background()); err != nil {
		d.log.Debug("lan: goodbye", "err", err)
	}
	d.cancel()
	_ = d.conn.Close()
	d.wg.Wait()
	d.mu.Lock()
	for s := range d.subs {
		delete(d.subs, s)
		close(s.ch)
	}
	d.mu.Unlock()
}
