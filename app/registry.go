package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Defaults of RegistryOptions.
const (
	DefaultSessionTTL    = 20 * time.Second
	DefaultChallengeTTL  = 60 * time.Second
	DefaultMaxChallenges = 100_000
	// DefaultMaxChallengesPerClient bounds the challenges one client holds
	// unused (a client needs one at a time).
	DefaultMaxChallengesPerClient = 64
	DefaultWatchBuffer            = 256
	DefaultMaxWatchers            = 100_000
	// MaxAdvertisedEndpoints bounds each endpoint list of a registration.
	MaxAdvertisedEndpoints = 16
	// MaxEndpointLen bounds one advertised endpoint, in bytes.
	MaxEndpointLen = 255
)

// RegistryOptions tune the registry service. Zero values take the defaults.
type RegistryOptions struct {
	// SessionTTL is how long a session stays online without a heartbeat.
	SessionTTL time.Duration
	// ReapInterval is how often expired sessions and challenges are swept
	// (default SessionTTL/4), so a silent client is offline within
	// SessionTTL+ReapInterval.
	ReapInterval time.Duration
	// ChallengeTTL is how long an unused challenge stays valid.
	ChallengeTTL time.Duration
	// MaxChallenges bounds outstanding challenges; beyond it Challenge
	// returns ports.ErrBusy.
	MaxChallenges int
	// MaxChallengesPerClient bounds the outstanding challenges of one
	// client (ChallengeFor); beyond it that client, and only it, gets
	// ports.ErrBusy. An attacker must then spread over
	// MaxChallenges/MaxChallengesPerClient clients to make Challenge busy
	// for everyone.
	MaxChallengesPerClient int
	// WatchBuffer is how many events a watcher may fall behind before it is
	// dropped.
	WatchBuffer int
	// MaxWatchers bounds concurrent watchers; beyond it Watch returns ports.ErrBusy.
	MaxWatchers int
	// Random is the source of challenges and tokens (crypto/rand by default).
	Random io.Reader
	// Logger receives "removed peer NAME (expired)" lines; nil discards.
	Logger *slog.Logger
}

// Registry is the registry service: it binds names to keys on a proof of
// possession over a fresh single-use challenge, keeps sessions online while
// they heartbeat, and fans presence changes out to watchers.
type Registry struct {
	accounts   ports.AccountStore
	presence   ports.PresenceStore
	challenges ports.ChallengeStore
	memCh      *memChallenges // challenges when they live in this process; nil when shared
	bus        ports.PresenceBus
	clock      ports.Clock
	opts       RegistryOptions
	log        *slog.Logger
	feed       *localFeed // IDs and recent events when there is no shared bus
	followFrom string     // the bus ID Run's follower starts after

	// names serialises read-modify-write of one name's presence
	// (register, heartbeat, unregister, expiry) so two of them on one name
	// cannot interleave in this process; operations on different names
	// run in parallel (a shared store's round trips would otherwise queue
	// every registration behind one lock). Across nodes, the store's own
	// atomic operations decide (ports.SessionRemover).
	names nameLocks
	// mu guards lastSeen and stunIndex.
	mu       sync.Mutex
	lastSeen map[string]time.Time // by Username.Key
	// stunIndex finds a session by its STUN username: one entry per live
	// session (removed when it ends or is replaced), so it is bounded by
	// the presence table.
	stunIndex map[string]domain.Username

	wMu      sync.RWMutex
	watchers map[*regWatcher]struct{}
}

var _ ports.RegistryService = (*Registry)(nil)

type regWatcher struct {
	// in carries pointers: one event is shared by every watcher, and a
	// buffer of 256 costs 2 KiB, not 35 KiB of copied events.
	in     chan *ports.PresenceUpdate
	closed bool // guarded by Registry.wMu (write lock)
}

// NewRegistry builds the registry service of a single node on its stores:
// challenges and presence events stay in this process.
func NewRegistry(accounts ports.AccountStore, presence ports.PresenceStore, clock ports.Clock, opts RegistryOptions) (*Registry, error) {
	return newRegistry(accounts, presence, nil, nil, clock, opts)
}

// NewSharedRegistry builds the service of one of several registry nodes
// sharing their stores (docs/scaling.md): challenges in a shared store, and
// presence events published to and followed from a bus all nodes share,
// which Run follows.
func NewSharedRegistry(accounts ports.AccountStore, presence ports.PresenceStore, challenges ports.ChallengeStore, bus ports.PresenceBus, clock ports.Clock, opts RegistryOptions) (*Registry, error) {
	switch {
	case challenges == nil:
		return nil, errors.New("new registry: nil challenge store")
	case bus == nil:
		return nil, errors.New("new registry: nil presence bus")
	}
	return newRegistry(accounts, presence, challenges, bus, clock, opts)
}

func newRegistry(accounts ports.AccountStore, presence ports.PresenceStore, challenges ports.ChallengeStore, bus ports.PresenceBus, clock ports.Clock, opts RegistryOptions) (*Registry, error) {
	switch {
	case accounts == nil:
		return nil, errors.New("new registry: nil account store")
	case presence == nil:
		return nil, errors.New("new registry: nil presence store")
	case clock == nil:
		return nil, errors.New("new registry: nil clock")
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.ReapInterval <= 0 {
		opts.ReapInterval = opts.SessionTTL / 4
	}
	if opts.ChallengeTTL <= 0 {
		opts.ChallengeTTL = DefaultChallengeTTL
	}
	if opts.MaxChallenges <= 0 {
		opts.MaxChallenges = DefaultMaxChallenges
	}
	if opts.MaxChallengesPerClient <= 0 {
		opts.MaxChallengesPerClient = DefaultMaxChallengesPerClient
	}
	if opts.WatchBuffer <= 0 {
		opts.WatchBuffer = DefaultWatchBuffer
	}
	if opts.MaxWatchers <= 0 {
		opts.MaxWatchers = DefaultMaxWatchers
	}
	if opts.Random == nil {
		opts.Random = rand.Reader
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		accounts:   accounts,
		presence:   presence,
		challenges: challenges,
		bus:        bus,
		clock:      clock,
		opts:       opts,
		log:        log,
		lastSeen:   make(map[string]time.Time),
		stunIndex:  make(map[string]domain.Username),
		watchers:   make(map[*regWatcher]struct{}),
	}
	if bus != nil {
		// Where this node starts following: taken now, before anything
		// is served, so no event published from here on is missed however
		// late Run's follower gets going.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		from, err := bus.Last(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("new registry: %w", err)
		}
		r.followFrom = from
	}
	if challenges == nil {
		r.memCh = newMemChallenges(opts.MaxChallenges)
		r.challenges = r.memCh
	}
	if bus == nil {
		r.feed = newLocalFeed(clock.Now(), localFeedSize)
	}
	return r, nil
}

// Options returns the effective options (defaults filled in).
func (r *Registry) Options() RegistryOptions { return r.opts }

// Run sweeps expired sessions and challenges until ctx is done; with a
// shared bus it also follows the other nodes' presence events.
func (r *Registry) Run(ctx context.Context) error {
	if r.bus != nil {
		done := make(chan struct{})
		go func() { defer close(done); r.follow(ctx) }()
		defer func() { <-done }()
	}
	t := time.NewTicker(r.opts.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.Reap(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("reap sessions", "err", err)
			}
		}
	}
}

// Reap takes every expired session offline and forgets expired challenges.
// Run calls it periodically; tests call it after moving the clock.
func (r *Registry) Reap(ctx context.Context) error {
	now := r.clock.Now()
	if r.memCh != nil {
		r.memCh.sweep(now)
	}
	if l, ok := r.presence.(ports.SweepLease); ok {
		mine, err := l.TakeSweep(ctx, r.opts.ReapInterval)
		if err != nil {
			return fmt.Errorf("take the sweep: %w", err)
		}
		if !mine {
			return nil // another node sweeps this round
		}
	}
	list, err := r.presence.List(ctx)
	if err != nil {
		return fmt.Errorf("list presence: %w", err)
	}
	for _, p := range list {
		if now.Before(p.ExpiresAt) {
			continue
		}
		if err := r.expire(ctx, p.Identity.Name(), p.TokenHash, now); err != nil {
			return err
		}
	}
	return nil
}

func (r *Registry) expire(ctx context.Context, name domain.Username, tokenHash [32]byte, now time.Time) error {
	defer r.names.lock(name)()
	cur, err := r.presence.Get(ctx, name)
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get presence of %s: %w", name, err)
	}
	if cur.TokenHash != tokenHash || now.Before(cur.ExpiresAt) {
		return nil // renewed or replaced meanwhile
	}
	if err := r.goOffline(ctx, cur, now); err != nil {
		return err
	}
	r.log.Info(fmt.Sprintf("removed peer %s (expired)", name), "peer", name.String())
	return nil
}

// Challenge issues a fresh single-use challenge, counted against no
// client (see ChallengeFor).
func (r *Registry) Challenge(ctx context.Context) ([]byte, error) {
	return r.ChallengeFor(ctx, "")
}

// ChallengeFor issues a fresh single-use challenge to client (a transport's
// name for where the request came from, e.g. an IP address or an IPv6 /64).
// A client holding MaxChallengesPerClient unused challenges gets
// ports.ErrBusy until one is used or expires; other clients are not
// affected. The empty client is not counted per client.
func (r *Registry) ChallengeFor(ctx context.Context, client string) ([]byte, error) {
	var c [domain.ChallengeSize]byte
	if _, err := io.ReadFull(r.opts.Random, c[:]); err != nil {
		return nil, fmt.Errorf("make challenge: %w", err)
	}
	if err := r.challenges.Issue(ctx, c[:], client, r.opts.MaxChallengesPerClient, r.clock.Now(), r.opts.ChallengeTTL); err != nil {
		return nil, err
	}
	return c[:], nil
}

// consumeChallenge uses c up; it fails if c was never issued, was used or
// expired.
func (r *Registry) consumeChallenge(ctx context.Context, c []byte) error {
	if len(c) != domain.ChallengeSize {
		return fmt.Errorf("challenge of %d bytes: %w", len(c), ports.ErrChallengeInvalid)
	}
	return r.challenges.Consume(ctx, c, r.clock.Now())
}

// checkProof validates the shape of a proof, uses its challenge up and
// verifies its signature. The challenge is spent even when the signature
// is bad, so each challenge allows exactly one attempt.
func (r *Registry) checkProof(ctx context.Context, p domain.RegistryProof, action domain.RegistryAction, sig []byte) (domain.Identity, error) {
	if p.Action != action {
		return domain.Identity{}, fmt.Errorf("%w: action %q, want %q", domain.ErrBadSignature, p.Action, action)
	}
	id, err := domain.NewIdentity(p.Name, p.Key)
	if err != nil {
		return domain.Identity{}, err
	}
	if err := checkEndpoints(p.Endpoints); err != nil {
		return domain.Identity{}, err
	}
	if err := r.consumeChallenge(ctx, p.Challenge); err != nil {
		return domain.Identity{}, err
	}
	if err := p.Check(sig); err != nil {
		if p.IsV1(sig) {
			return domain.Identity{}, fmt.Errorf("proof of %s: %w", p.Name, domain.ErrOutdatedProof)
		}
		return domain.Identity{}, fmt.Errorf("proof of %s: %w", p.Name, err)
	}
	return id, nil
}

// ErrInvalidEndpoint is wrapped by the error Register returns for an
// endpoint that is not one a peer could dial (see ValidateEndpoint).
var ErrInvalidEndpoint = errors.New("invalid endpoint")

// EndpointError says which advertised endpoint was refused and why. It
// names the list and position, never the bytes sent (they may hold
// anything and would reach the server log).
type EndpointError struct {
	List   string // "link" or "file"
	Index  int
	Reason string
}

func (e *EndpointError) Error() string {
	return fmt.Sprintf("%s: %s endpoint %d: %s", ErrInvalidEndpoint, e.List, e.Index, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidEndpoint) hold.
func (e *EndpointError) Unwrap() error { return ErrInvalidEndpoint }

// InvalidRequest marks the error as the client's fault (a transport maps it
// to its "invalid request" answer).
func (e *EndpointError) InvalidRequest() bool { return true }

func checkEndpoints(eps domain.Endpoints) error {
	for _, l := range []struct {
		name string
		list []string
	}{{"link", eps.Link}, {"file", eps.File}} {
		if len(l.list) > MaxAdvertisedEndpoints {
			return fmt.Errorf("%w: %d endpoints, at most %d", domain.ErrTooLarge, len(l.list), MaxAdvertisedEndpoints)
		}
		for i, e := range l.list {
			if len(e) == 0 || len(e) > MaxEndpointLen {
				return fmt.Errorf("%w: endpoint of %d bytes (1 to %d)", domain.ErrTooLarge, len(e), MaxEndpointLen)
			}
			if reason := ValidateEndpoint(e); reason != "" {
				return &EndpointError{List: l.name, Index: i, Reason: reason}
			}
		}
	}
	return nil
}

// memAddrPrefix is the address form of the in-memory network
// (adapters/memory): "mem:" and a peer ID.
const memAddrPrefix = "mem:"

// ValidateEndpoint says what is wrong with an advertised endpoint, or ""
// when it is acceptable: printable ASCII only (no spaces or control
// characters), and either "host:port" with a decimal port 1..65535 and a
// host that is an IP literal (IPv6 in brackets, optionally with a zone) or
// shaped like a DNS name (labels of 1 to 63 letters, digits and hyphens,
// not starting or ending with a hyphen, 253 bytes at most), or
// "mem:<peer id>" with 1 to 64 lower-case letters and digits.
func ValidateEndpoint(e string) string {
	for i := 0; i < len(e); i++ {
		if c := e[i]; c <= ' ' || c >= 0x7f {
			return fmt.Sprintf("byte %d is not printable ASCII", i)
		}
	}
	if id, ok := strings.CutPrefix(e, memAddrPrefix); ok {
		if len(id) < 1 || len(id) > 64 || strings.IndexFunc(id, func(r rune) bool {
			return (r < 'a' || r > 'z') && (r < '0' || r > '9')
		}) >= 0 {
			return `want "mem:" and 1 to 64 lower-case letters and digits`
		}
		return ""
	}
	host, port, err := net.SplitHostPort(e)
	if err != nil {
		return `want "host:port"`
	}
	if len(port) < 1 || len(port) > 5 || strings.IndexFunc(port, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return "port is not a decimal number"
	}
	if n, _ := strconv.Atoi(port); n < 1 || n > 65535 {
		return "port out of range 1..65535"
	}
	if strings.HasPrefix(e, "[") {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "bracketed host is not an IPv6 address"
		}
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "" // IPv4 (SplitHostPort wants IPv6 in brackets)
	}
	if !dnsNameShaped(host) {
		return "host is neither an IP address nor a DNS name"
	}
	return ""
}

func dnsNameShaped(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}

// Register checks the signed proof, binds the name to the key on first use
// and marks the user online with a new session. A live older session is
// replaced: watchers are told it went offline, then that the new one is
// online.
// The address policy (addressPolicy) decides which advertised endpoints are
// published; the others come back in Session.Refused.
func (r *Registry) Register(ctx context.Context, req ports.RegisterRequest) (ports.Session, error) {
	id, err := r.checkProof(ctx, req.Proof, domain.ActionRegister, req.Signature)
	if err != nil {
		return ports.Session{}, err
	}
	now := r.clock.Now()
	if err := r.accounts.Bind(ctx, id, now); err != nil {
		return ports.Session{}, fmt.Errorf("bind account: %w", err)
	}
	var raw [32 + stunUsernameBytes + stunKeyBytes]byte
	if _, err := io.ReadFull(r.opts.Random, raw[:]); err != nil {
		return ports.Session{}, fmt.Errorf("make session token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:32])
	stun := ports.STUNCredentials{
		Username: base64.RawURLEncoding.EncodeToString(raw[32 : 32+stunUsernameBytes]),
		Key:      append([]byte(nil), raw[32+stunUsernameBytes:]...),
	}
	host, pending, refused := newAddressPolicy(req.ObservedHost).apply(req.Proof.Endpoints)
	p := ports.Presence{
		Identity:  id,
		Host:      host,
		Pending:   pending,
		STUN:      stun,
		Changes:   stunChangeBurst,
		ChangesAt: now,
		TokenHash: sha256.Sum256([]byte(token)),
		ExpiresAt: now.Add(r.opts.SessionTTL),
		Since:     now,
	}
	p.Endpoints = derivePublished(p)
	defer r.names.lock(id.Name())()
	old, err := r.presence.Get(ctx, id.Name())
	replaced := err == nil && now.Before(old.ExpiresAt)
	if err == nil {
		r.mu.Lock()
		delete(r.stunIndex, old.STUN.Username)
		r.mu.Unlock()
	}
	if err := r.presence.Put(ctx, p); err != nil {
		return ports.Session{}, fmt.Errorf("put presence of %s: %w", id.Name(), err)
	}
	online := domain.PresenceEvent{Peer: domain.Peer{Identity: id, Online: true, Endpoints: p.Endpoints, LastSeen: now}}
	r.mu.Lock()
	if replaced {
		r.lastSeen[id.Name().Key()] = now
	}
	r.stunIndex[stun.Username] = id.Name()
	r.mu.Unlock()
	if replaced {
		// The old session ends here (a client killed and started again
		// before its stream was seen to close): say so, so that watchers
		// see the user come online again and redo what a peer coming
		// online triggers (resuming transfers, the outbox) even when the
		// new session has the old one's endpoints. Both events go out as
		// one change: each presence stream gets them in one write, not
		// two (with 10,000 watchers, two TLS writes each doubled the cost
		// of a re-registration).
		r.publish(ctx, domain.PresenceEvent{Peer: domain.Peer{Identity: id, Online: false, LastSeen: now}}, online)
	} else {
		r.publish(ctx, online)
	}
	return ports.Session{Token: token, ExpiresIn: r.opts.SessionTTL, STUN: stun, Refused: refused}, nil
}

// session returns the live presence of name if token is its session token.
// Callers hold name's lock.
func (r *Registry) session(ctx context.Context, name domain.Username, token string, now time.Time) (ports.Presence, error) {
	p, err := r.presence.Get(ctx, name)
	if errors.Is(err, domain.ErrNotFound) {
		return ports.Presence{}, ports.ErrSessionInvalid
	}
	if err != nil {
		return ports.Presence{}, fmt.Errorf("get presence of %s: %w", name, err)
	}
	h := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(h[:], p.TokenHash[:]) != 1 || !now.Before(p.ExpiresAt) {
		return ports.Presence{}, ports.ErrSessionInvalid
	}
	return p, nil
}

// Heartbeat extends a live session by SessionTTL.
func (r *Registry) Heartbeat(ctx context.Context, name domain.Username, token string) error {
	now := r.clock.Now()
	defer r.names.lock(name)()
	p, err := r.session(ctx, name, token, now)
	if err != nil {
		return err
	}
	p.ExpiresAt = now.Add(r.opts.SessionTTL)
	if err := r.presence.Put(ctx, p); err != nil {
		return fmt.Errorf("put presence of %s: %w", name, err)
	}
	return nil
}

// Unregister takes a user offline on a signed proof by the bound key.
func (r *Registry) Unregister(ctx context.Context, proof domain.RegistryProof, sig []byte) error {
	id, err := r.checkProof(ctx, proof, domain.ActionUnregister, sig)
	if err != nil {
		return err
	}
	bound, err := r.accounts.Get(ctx, id.Name())
	if errors.Is(err, domain.ErrNotFound) {
		return fmt.Errorf("unregister %s: %w", id.Name(), domain.ErrUnknownPeer)
	}
	if err != nil {
		return fmt.Errorf("get account %s: %w", id.Name(), err)
	}
	if !bound.SameKey(proof.Key) {
		return fmt.Errorf("unregister %s: %w", id.Name(), domain.ErrNameTaken)
	}
	defer r.names.lock(id.Name())()
	cur, err := r.presence.Get(ctx, id.Name())
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get presence of %s: %w", id.Name(), err)
	}
	return r.goOffline(ctx, cur, r.clock.Now())
}

// Disconnect ends the session whose presence stream closed.
func (r *Registry) Disconnect(ctx context.Context, name domain.Username, token string) error {
	now := r.clock.Now()
	defer r.names.lock(name)()
	p, err := r.session(ctx, name, token, now)
	if err != nil {
		return err
	}
	return r.goOffline(ctx, p, now)
}

// goOffline deletes the presence and tells watchers. Callers hold the
// name's lock.
func (r *Registry) goOffline(ctx context.Context, p ports.Presence, now time.Time) error {
	id := p.Identity
	r.mu.Lock()
	delete(r.stunIndex, p.STUN.Username)
	r.mu.Unlock()
	if rm, ok := r.presence.(ports.SessionRemover); ok {
		// Shared with other nodes: only the one whose removal wins says so.
		removed, err := rm.RemoveSession(ctx, id.Name(), p.TokenHash)
		if err != nil {
			return fmt.Errorf("remove presence of %s: %w", id.Name(), err)
		}
		if !removed {
			return nil
		}
	} else if err := r.presence.Delete(ctx, id.Name()); err != nil {
		return fmt.Errorf("delete presence of %s: %w", id.Name(), err)
	}
	r.mu.Lock()
	r.lastSeen[id.Name().Key()] = now
	r.mu.Unlock()
	r.publish(ctx, domain.PresenceEvent{Peer: domain.Peer{Identity: id, Online: false, LastSeen: now}})
	return nil
}

// Lookup returns one user, online or not.
func (r *Registry) Lookup(ctx context.Context, name domain.Username) (domain.Peer, error) {
	id, err := r.accounts.Get(ctx, name)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Peer{}, fmt.Errorf("lookup %s: %w", name, domain.ErrUnknownPeer)
	}
	if err != nil {
		return domain.Peer{}, fmt.Errorf("get account %s: %w", name, err)
	}
	now := r.clock.Now()
	p, err := r.presence.Get(ctx, name)
	switch {
	case err == nil && now.Before(p.ExpiresAt):
		return domain.Peer{Identity: id, Online: true, Endpoints: p.Endpoints, LastSeen: now}, nil
	case err == nil || errors.Is(err, domain.ErrNotFound):
		r.mu.Lock()
		seen := r.lastSeen[name.Key()]
		r.mu.Unlock()
		return domain.Peer{Identity: id, LastSeen: seen}, nil
	default:
		return domain.Peer{}, fmt.Errorf("get presence of %s: %w", name, err)
	}
}

// Online lists the users online now, by name.
func (r *Registry) Online(ctx context.Context) ([]domain.Peer, error) {
	list, err := r.presence.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list presence: %w", err)
	}
	now := r.clock.Now()
	out := make([]domain.Peer, 0, len(list))
	for _, p := range list {
		if now.Before(p.ExpiresAt) {
			out = append(out, domain.Peer{Identity: p.Identity, Online: true, Endpoints: p.Endpoints, LastSeen: now})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name().Key() < out[j].Name().Key() })
	return out, nil
}

// Watch streams the online set, then every change, until ctx is done or the
// watcher falls more than WatchBuffer events behind (then the channel is
// closed early and the caller should watch again).
func (r *Registry) Watch(ctx context.Context) (<-chan domain.PresenceEvent, error) {
	w, err := r.addWatcher()
	if err != nil {
		return nil, err
	}

	// Subscribed before the snapshot, so no change falls between the two;
	// a change may be seen twice, which presence events tolerate.
	snapshot, err := r.Online(ctx)
	if err != nil {
		r.drop(w)
		return nil, err
	}
	out := make(chan domain.PresenceEvent)
	go func() {
		defer close(out)
		defer r.drop(w)
		for _, p := range snapshot {
			select {
			case out <- domain.PresenceEvent{Peer: p}:
			case <-ctx.Done():
				return
			}
		}
		snapshot = nil
		for {
			select {
			case ev, ok := <-w.in:
				if !ok {
					return
				}
				select {
				case out <- ev.Event:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (r *Registry) drop(w *regWatcher) {
	r.wMu.Lock()
	defer r.wMu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.in)
	}
	delete(r.watchers, w)
}

// addWatcher registers a watcher, or ErrBusy at MaxWatchers.
func (r *Registry) addWatcher() (*regWatcher, error) {
	w := &regWatcher{in: make(chan *ports.PresenceUpdate, r.opts.WatchBuffer)}
	r.wMu.Lock()
	defer r.wMu.Unlock()
	if len(r.watchers) >= r.opts.MaxWatchers {
		return nil, fmt.Errorf("%d watchers: %w", r.opts.MaxWatchers, ports.ErrBusy)
	}
	r.watchers[w] = struct{}{}
	return w, nil
}

// publish announces es, the events of one change, in order: to this
// node's watchers at once, next to each other and all but the last marked
// More (so the HTTP hub writes them to each stream together), or through
// the shared bus (whose follower in Run hands them to every node's
// watchers as separate updates: other nodes' events may fall between).
func (r *Registry) publish(ctx context.Context, es ...domain.PresenceEvent) {
	if r.bus == nil {
		r.feed.add(r.fanout, es...)
		return
	}
	for _, e := range es {
		if _, err := r.bus.Publish(context.WithoutCancel(ctx), e); err != nil {
			// The change is made; only its announcement is lost. Watchers
			// see it at their next resync, lookups at once.
			r.log.Warn("publish presence event", "peer", e.Peer.Name().String(), "err", err)
		}
	}
}

// fanout hands u to every watcher without blocking; a watcher whose buffer
// is full is dropped.
func (r *Registry) fanout(u *ports.PresenceUpdate) {
	var slow []*regWatcher
	r.wMu.RLock()
	for w := range r.watchers {
		select {
		case w.in <- u:
		default:
			slow = append(slow, w)
		}
	}
	r.wMu.RUnlock()
	for _, w := range slow {
		r.drop(w)
	}
}

// Stats counts accounts, sessions and watchers.
func (r *Registry) Stats(ctx context.Context) (ports.RegistryStats, error) {
	n, err := r.accounts.Count(ctx)
	if err != nil {
		return ports.RegistryStats{}, fmt.Errorf("count accounts: %w", err)
	}
	online, err := r.Online(ctx)
	if err != nil {
		return ports.RegistryStats{}, err
	}
	r.wMu.RLock()
	w := len(r.watchers)
	r.wMu.RUnlock()
	return ports.RegistryStats{Registered: n, Online: len(online), Watchers: w}, nil
}
