package registry

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Bounds on what the client accepts from a registry.
const (
	maxPeerEndpoints = 64
	maxSSELine       = 64 << 10
	watchBuffer      = 256
)

// Client is the chat client's directory: it registers with the registry
// over HTTPS, keeps the session alive, follows the presence stream and
// fans it out to watchers. It reconnects with exponential backoff and
// registers again by itself when the registry forgot the session (restart).
type Client struct {
	cfg    ClientConfig
	nodes  []*node // the registry's nodes (client_nodes.go); one in use at a time
	cur    atomic.Int32
	moved  atomic.Bool            // failed over: register at the new node
	lastID atomic.Pointer[string] // the presence stream's last event ID
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu            sync.Mutex
	closed        bool
	sess          *session
	subs          map[*subscriber]struct{}
	online        map[string]domain.Peer // by Username.Key, from the stream; at most cfg.MaxPeers
	overflowed    int                    // presence events dropped for MaxPeers since the stream connected
	streamStarted bool
	streamUp      bool
	streamCancel  context.CancelFunc
	streamKick    chan struct{}
	sigSubs       map[*signalSub]struct{}
	relays        relayCache
	lastRefused   string // the refused endpoints last logged
	mailSubs      map[chan struct{}]struct{}
}

var (
	_ ports.Directory  = (*Client)(nil)
	_ ports.Rendezvous = (*Client)(nil)
)

type session struct {
	me     domain.LocalIdentity
	eps    domain.Endpoints
	reg    registration // guarded by Client.mu
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{}
}

// registration is what one successful register answer gave: the session
// token, its TTL and the session's STUN binding (zero when the registry
// runs no STUN server).
type registration struct {
	token string
	ttl   time.Duration
	stun  ports.STUNBinding
}

type subscriber struct {
	ch   chan ports.DirectoryEvent
	lost bool
}

// offer hands ev over without blocking. After an overflow the next event
// that fits is a Resync, so a slow watcher knows to list Online again.
func (s *subscriber) offer(ev ports.DirectoryEvent) {
	if s.lost {
		select {
		case s.ch <- ports.DirectoryEvent{Kind: ports.Resync}:
			s.lost = false
		default:
			return
		}
	}
	select {
	case s.ch <- ev:
	default:
		s.lost = true
	}
}

// NewClient prepares a client for the registry at cfg.URL. It connects
// lazily (Register, Watch, Lookup, Online). The cleanup stops every
// background loop, closes watcher channels and idle connections; it does
// not unregister (the registry takes us offline when our stream closes).
func NewClient(cfg ClientConfig, logger *slog.Logger) (*Client, func(), error) {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	nodes, err := newNodes(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:        cfg,
		nodes:      nodes,
		log:        logger.With("registry", nodes[0].base.Host),
		ctx:        ctx,
		cancel:     cancel,
		subs:       make(map[*subscriber]struct{}),
		online:     make(map[string]domain.Peer),
		streamKick: make(chan struct{}, 1),
		sigSubs:    make(map[*signalSub]struct{}),
		mailSubs:   make(map[chan struct{}]struct{}),
	}
	return c, func() { _ = c.Close() }, nil
}

// Close stops the client. Watch channels are closed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	for _, n := range c.nodes {
		n.tr.CloseIdleConnections()
	}
	return nil
}

// Register binds me's name to me's key and keeps us online until
// Unregister or Close. It retries while the registry says it is busy.
func (c *Client) Register(ctx context.Context, me domain.LocalIdentity, eps domain.Endpoints) error {
	c.stopSession()
	reg, err := c.registerOnce(ctx, me, eps)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(c.ctx)
	s := &session{me: me, eps: eps, reg: reg, cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return fmt.Errorf("register: %w", errClosed)
	}
	c.sess = s
	c.relays = relayCache{}
	// A stream loop started here reads the session just set; kicking it
	// too would open a second session stream right behind the first, and
	// the server, taking them in either order, could keep the first as
	// the newest and end the session when the client closed it (a fresh
	// registration answered 401 session_invalid).
	running := c.streamStarted
	c.ensureStreamLocked()
	// Started under c.mu, after the closed check, so Close's Wait sees it.
	c.wg.Go(func() {
		defer close(s.done)
		c.sessionLoop(sctx, s)
	})
	c.mu.Unlock()
	if running {
		c.kickStream() // reconnect the running stream with the session
	}
	return nil
}

var errClosed = errors.New("directory client closed")

func (c *Client) stopSession() {
	c.mu.Lock()
	s := c.sess
	c.sess = nil
	c.mu.Unlock()
	if s != nil {
		s.cancel()
		<-s.done
	}
}

// registerOnce runs challenge → sign → register, retrying while the
// registry is busy and a few times after a network error.
func (c *Client) registerOnce(ctx context.Context, me domain.LocalIdentity, eps domain.Endpoints) (registration, error) {
	const maxNetRetries = 3
	backoff := c.cfg.MinBackoff
	for netRetries := 0; ; {
		reg, err := c.tryRegister(ctx, me, eps)
		if err == nil || ctx.Err() != nil {
			return reg, err
		}
		var apiErr *APIError
		wait := jitter(backoff)
		switch {
		case errors.As(err, &apiErr) && errors.Is(err, ports.ErrBusy):
			if len(c.nodes) == 1 {
				// Retry-After is that node's; with others we have moved on.
				wait = max(apiErr.RetryAfter, wait)
			}
		case errors.As(err, &apiErr), netRetries == maxNetRetries:
			return registration{}, err
		default:
			netRetries++
			c.log.Debug("register: retrying after network error", "err", err)
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
		select {
		case <-ctx.Done():
			return registration{}, fmt.Errorf("register %s: %w (last: %w)", me.Name(), ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

func (c *Client) tryRegister(ctx context.Context, me domain.LocalIdentity, eps domain.Endpoints) (registration, error) {
	ch, err := c.challenge(ctx)
	if err != nil {
		return registration{}, fmt.Errorf("register %s: %w", me.Name(), err)
	}
	proof := domain.RegistryProof{Action: domain.ActionRegister, Name: me.Name(), Key: me.PublicKey(), Challenge: ch, Endpoints: eps}
	body := registerRequest{
		Key:       base64.StdEncoding.EncodeToString(proof.Key),
		Challenge: base64.StdEncoding.EncodeToString(ch),
		Endpoints: endpointsJSON{Link: nonNil(eps.Link), File: nonNil(eps.File)},
		Signature: base64.StdEncoding.EncodeToString(proof.Sign(me)),
	}
	var resp registerResponse
	if err := c.do(ctx, http.MethodPut, userPath(me.Name())+"/presence", "", body, &resp); err != nil {
		return registration{}, fmt.Errorf("register %s: %w", me.Name(), err)
	}
	if resp.Token == "" || len(resp.Token) > 256 || resp.ExpiresInSeconds <= 0 {
		return registration{}, fmt.Errorf("register %s: registry answered without a usable session", me.Name())
	}
	reg := registration{token: resp.Token, ttl: time.Duration(resp.ExpiresInSeconds) * time.Second}
	if resp.STUN != nil {
		if reg.stun, err = c.stunBinding(*resp.STUN); err != nil {
			return registration{}, fmt.Errorf("register %s: %w", me.Name(), err)
		}
	}
	c.logRefused(resp.Refused)
	return reg, nil
}

func (c *Client) challenge(ctx context.Context) ([]byte, error) {
	var resp challengeResponse
	if err := c.do(ctx, http.MethodPost, "/v1/challenges", "", nil, &resp); err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	ch, err := base64.StdEncoding.DecodeString(resp.Challenge)
	if err != nil || len(ch) != domain.ChallengeSize {
		return nil, fmt.Errorf("challenge: registry sent %d bytes, want %d", len(ch), domain.ChallengeSize)
	}
	return ch, nil
}

// userPath needs no escaping: a normalised name holds only [a-z0-9_.-].
func userPath(name domain.Username) string { return "/v1/users/" + name.String() }

// sessionLoop heartbeats every ttl/4; a forgotten session is registered
// again, a failure retried with backoff.
func (c *Client) sessionLoop(ctx context.Context, s *session) {
	c.mu.Lock()
	interval := max(s.reg.ttl/4, 100*time.Millisecond)
	c.mu.Unlock()
	t := time.NewTimer(interval)
	defer t.Stop()
	backoff := c.cfg.MinBackoff
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		c.mu.Lock()
		token := s.reg.token
		c.mu.Unlock()
		var err error
		if c.moved.Swap(false) {
			err = ports.ErrSessionInvalid // a new node: register there (its STUN service too)
		} else {
			err = c.do(ctx, http.MethodPost, userPath(s.me.Name())+"/presence/heartbeat", token, nil, nil)
		}
		if errors.Is(err, ports.ErrSessionInvalid) {
			var reg registration
			if reg, err = c.tryRegister(ctx, s.me, s.eps); err == nil {
				c.mu.Lock()
				s.reg = reg
				c.relays = relayCache{}
				c.mu.Unlock()
				interval = max(reg.ttl/4, 100*time.Millisecond)
				c.log.Info("registered again", "name", s.me.Name().String(), "node", c.node().base.Host)
				c.kickStream()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("registry session", "err", err, "retry_in", backoff)
			t.Reset(jitter(backoff))
			backoff = min(2*backoff, c.cfg.MaxBackoff)
			continue
		}
		backoff = c.cfg.MinBackoff
		t.Reset(interval)
	}
}

func (c *Client) kickSession() {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Unregister takes us offline with a signed request and stops heartbeats.
func (c *Client) Unregister(ctx context.Context) error {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	c.stopSession()
	ch, err := c.challenge(ctx)
	if err != nil {
		return fmt.Errorf("unregister %s: %w", s.me.Name(), err)
	}
	proof := domain.RegistryProof{Action: domain.ActionUnregister, Name: s.me.Name(), Key: s.me.PublicKey(), Challenge: ch}
	body := unregisterRequest{
		Key:       base64.StdEncoding.EncodeToString(proof.Key),
		Challenge: base64.StdEncoding.EncodeToString(ch),
		Signature: base64.StdEncoding.EncodeToString(proof.Sign(s.me)),
	}
	if err := c.do(ctx, http.MethodDelete, userPath(s.me.Name())+"/presence", "", body, nil); err != nil {
		return fmt.Errorf("unregister %s: %w", s.me.Name(), err)
	}
	c.kickStream()
	return nil
}

// Lookup finds one user, online or not.
func (c *Client) Lookup(ctx context.Context, name domain.Username) (domain.Peer, error) {
	var pj peerJSON
	if err := c.do(ctx, http.MethodGet, userPath(name), "", nil, &pj); err != nil {
		return domain.Peer{}, fmt.Errorf("lookup %s: %w", name, err)
	}
	p, err := pj.peer()
	if err != nil {
		return domain.Peer{}, fmt.Errorf("lookup %s: %w", name, err)
	}
	if !p.Name().Equal(name) {
		return domain.Peer{}, fmt.Errorf("lookup %s: registry answered for %s", name, p.Name())
	}
	return p, nil
}

// Online lists the users online now.
func (c *Client) Online(ctx context.Context) ([]domain.Peer, error) {
	var resp onlineResponse
	if err := c.do(ctx, http.MethodGet, "/v1/online", "", nil, &resp); err != nil {
		return nil, fmt.Errorf("list online: %w", err)
	}
	out := make([]domain.Peer, 0, len(resp.Users))
	for _, pj := range resp.Users {
		p, err := pj.peer()
		if err != nil {
			return nil, fmt.Errorf("list online: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// identityJSON checks a name and a base64 key the registry sent.
func identityJSON(nameText, keyB64 string) (domain.Identity, error) {
	name, err := domain.ParseUsername(nameText)
	if err != nil {
		return domain.Identity{}, fmt.Errorf("registry sent a bad name: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return domain.Identity{}, fmt.Errorf("registry sent a bad key for %s", name)
	}
	return domain.NewIdentity(name, key)
}

func (pj peerJSON) peer() (domain.Peer, error) {
	id, err := identityJSON(pj.Name, pj.Key)
	if err != nil {
		return domain.Peer{}, err
	}
	name := id.Name()
	for _, list := range [][]string{pj.Endpoints.Link, pj.Endpoints.File} {
		if len(list) > maxPeerEndpoints {
			return domain.Peer{}, fmt.Errorf("registry sent %d endpoints for %s: %w", len(list), name, domain.ErrTooLarge)
		}
	}
	cands, err := pj.candidates()
	if err != nil {
		return domain.Peer{}, fmt.Errorf("peer %s: %w", name, err)
	}
	switch nat := domain.NATMapping(pj.NAT); nat {
	case domain.NATUnknown, domain.NATNone, domain.NATEndpointIndependent, domain.NATEndpointDependent:
	default:
		return domain.Peer{}, fmt.Errorf("registry sent NAT mapping %.20q for %s", pj.NAT, name)
	}
	p := domain.Peer{Identity: id, Online: pj.Online, Endpoints: domain.Endpoints{Link: pj.Endpoints.Link, File: pj.Endpoints.File,
		NAT: domain.NATMapping(pj.NAT), Candidates: cands}}
	if pj.LastSeen != nil {
		p.LastSeen = *pj.LastSeen
	}
	return p, nil
}

// Watch streams directory events until ctx is done or the client closes.
func (c *Client) Watch(ctx context.Context) (<-chan ports.DirectoryEvent, error) {
	s := &subscriber{ch: make(chan ports.DirectoryEvent, watchBuffer)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("watch: %w", errClosed)
	}
	c.subs[s] = struct{}{}
	if c.streamUp {
		s.offer(ports.DirectoryEvent{Kind: ports.Connected})
		for _, p := range c.online {
			s.offer(ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: p})
		}
	}
	c.ensureStreamLocked()
	c.untilDoneLocked(ctx, func() {
		delete(c.subs, s)
		close(s.ch)
	})
	c.mu.Unlock()
	return s.ch, nil
}

// untilDoneLocked runs end under c.mu once ctx is done or the client
// closes. Callers hold c.mu (so Close's Wait sees the goroutine).
func (c *Client) untilDoneLocked(ctx context.Context, end func()) {
	c.wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-c.ctx.Done():
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		end()
	})
}

// emitLocked hands ev to every watcher. Callers hold c.mu.
func (c *Client) emitLocked(ev ports.DirectoryEvent) {
	for s := range c.subs {
		s.offer(ev)
	}
}

func (c *Client) ensureStreamLocked() {
	if c.streamStarted || c.closed {
		return
	}
	c.streamStarted = true
	c.wg.Go(c.streamLoop)
}

// kickStream makes the stream reconnect now, with the current session.
func (c *Client) kickStream() {
	c.mu.Lock()
	if c.streamCancel != nil {
		c.streamCancel()
	}
	c.mu.Unlock()
	select {
	case c.streamKick <- struct{}{}:
	default:
	}
}

var errStreamResync = errors.New("registry dropped our stream: resync")

// streamLoop keeps one presence stream open for as long as the client lives.
func (c *Client) streamLoop() {
	backoff := c.cfg.MinBackoff
	first, reportedDown := true, false
	for c.ctx.Err() == nil {
		var name, token string
		c.mu.Lock()
		if c.sess != nil {
			name, token = c.sess.me.Name().String(), c.sess.reg.token
		}
		sctx, scancel := context.WithCancel(c.ctx)
		c.streamCancel = scancel
		c.mu.Unlock()
		// A kick that arrived before this connect is already honoured.
		select {
		case <-c.streamKick:
		default:
		}

		connected := false
		err := c.runStream(sctx, name, token, func(resumed bool) {
			connected, reportedDown = true, false
			backoff = c.cfg.MinBackoff
			c.mu.Lock()
			c.streamUp = true
			if resumed {
				// The registry replays what changed since our last event:
				// the online table stays, watchers need no resync.
				c.emitLocked(ports.DirectoryEvent{Kind: ports.Connected})
				first = false
				c.mu.Unlock()
				c.kickSession()
				return
			}
			clear(c.online)
			if c.overflowed > 1 {
				c.log.Warn("presence events dropped for the peer limit", "count", c.overflowed, "max_peers", c.cfg.MaxPeers)
			}
			c.overflowed = 0
			c.emitLocked(ports.DirectoryEvent{Kind: ports.Connected})
			if !first {
				c.emitLocked(ports.DirectoryEvent{Kind: ports.Resync})
			}
			first = false
			c.mu.Unlock()
			// The registry may have restarted: check the session now.
			c.kickSession()
			if token != "" {
				c.mailWaiting() // mail may have come while the stream was down
			}
		})
		kicked := sctx.Err() != nil && c.ctx.Err() == nil
		scancel()
		if c.ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		if !kicked && (c.streamUp || !reportedDown) {
			c.emitLocked(ports.DirectoryEvent{Kind: ports.Disconnected, Err: err})
			reportedDown = true
		}
		if !kicked {
			c.streamUp = false
		}
		c.mu.Unlock()
		if errors.Is(err, ports.ErrSessionInvalid) {
			c.kickSession()
		}
		if kicked || (connected && errors.Is(err, errStreamResync)) {
			continue
		}
		if !connected {
			c.log.Debug("presence stream", "err", err, "retry_in", backoff)
		}
		select {
		case <-c.ctx.Done():
			return
		case <-c.streamKick:
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// runStream opens the stream and reads it until it ends. onConnected runs
// once the registry accepted the stream.
func (c *Client) runStream(ctx context.Context, name, token string, onConnected func(resumed bool)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := c.node()
	u := *n.base
	u.Path += "/v1/events"
	if token != "" {
		u.RawQuery = url.Values{"name": {name}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	last := c.lastEventID()
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := n.sc.Do(req)
	if err != nil {
		c.failover(n, err)
		return fmt.Errorf("presence stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := readAPIError(resp)
		if errors.Is(err, ports.ErrBusy) {
			c.failover(n, err)
		}
		return fmt.Errorf("presence stream: %w", err)
	}
	onConnected(last != "" && resp.Header.Get(resumedHeader) == "true")

	idle := time.AfterFunc(c.cfg.StreamIdleTimeout, cancel)
	defer idle.Stop()
	r := bufio.NewReaderSize(resp.Body, 4096)
	var event, id string
	var data []byte
	for {
		line, err := readLine(r, maxSSELine)
		if err != nil {
			if ctx.Err() != nil && c.ctx.Err() == nil {
				return fmt.Errorf("presence stream: silent for %v or reset: %w", c.cfg.StreamIdleTimeout, err)
			}
			return fmt.Errorf("presence stream: %w", err)
		}
		idle.Reset(c.cfg.StreamIdleTimeout)
		switch {
		case len(line) == 0:
			if err := c.dispatch(event, data); err != nil {
				return err
			}
			if id != "" {
				c.setLastEventID(id)
			}
			event, data, id = "", data[:0], ""
		case line[0] == ':':
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "event":
				event = string(value)
			case "id":
				if len(value) <= 64 {
					id = string(value)
				}
			case "data":
				if len(data)+len(value) > maxSSELine {
					return fmt.Errorf("presence stream: event larger than %d bytes", maxSSELine)
				}
				if len(data) > 0 {
					data = append(data, '\n')
				}
				data = append(data, value...)
			}
		}
	}
}

func (c *Client) dispatch(event string, data []byte) error {
	switch event {
	case "presence":
		var pj peerJSON
		if err := json.Unmarshal(data, &pj); err != nil {
			return fmt.Errorf("presence stream: bad event: %w", err)
		}
		p, err := pj.peer()
		if err != nil {
			return fmt.Errorf("presence stream: %w", err)
		}
		c.mu.Lock()
		if _, known := c.online[p.Name().Key()]; p.Online && !known && len(c.online) >= c.cfg.MaxPeers {
			// Only online peers are kept, so there is nothing to evict.
			if c.overflowed++; c.overflowed == 1 {
				c.log.Warn("registry sent more online peers than we keep; dropping presence of further names", "max_peers", c.cfg.MaxPeers, "dropped", p.Name().String())
			}
			c.mu.Unlock()
			return nil
		}
		if p.Online {
			c.online[p.Name().Key()] = p
		} else {
			delete(c.online, p.Name().Key())
		}
		c.emitLocked(ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: p})
		c.mu.Unlock()
	case "signal":
		c.dispatchSignal(data)
	case "mail":
		c.mailWaiting()
	case "resync":
		return errStreamResync
	}
	return nil
}

// readLine reads one line without its end, at most max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		buf := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > max {
				return nil, fmt.Errorf("line longer than %d bytes", max)
			}
			line, err = r.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return line, nil
}

// do sends one JSON request and decodes a JSON answer of at most maxBody.
func (c *Client) do(ctx context.Context, method, path, token string, in, out any) error {
	return c.doLimited(ctx, method, path, token, in, out, maxBody)
}

// doLimited is do with another bound on the answer.
func (c *Client) doLimited(ctx context.Context, method, path, token string, in, out any, maxBody int64) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	n := c.node()
	u := *n.base
	p, query, _ := strings.Cut(path, "?")
	u.Path += p
	u.RawQuery = query
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			c.failover(n, err)
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		err := readAPIError(resp)
		if resp.StatusCode == http.StatusServiceUnavailable {
			c.failover(n, err)
		}
		return err
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if int64(len(b)) > maxBody {
		return fmt.Errorf("%s %s: answer larger than %d bytes: %w", method, path, maxBody, domain.ErrTooLarge)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}

// noRedirects stops the HTTP client at the first redirect: following one
// could carry the session token to another host or over plain http. The
// 3xx answer itself becomes an error (readAPIError).
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// maxLocationShown bounds how much of a redirect's Location an error quotes.
const maxLocationShown = 200

func readAPIError(resp *http.Response) error {
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		loc := resp.Header.Get("Location")
		if len(loc) > maxLocationShown {
			loc = loc[:maxLocationShown] + "..."
		}
		return &APIError{Status: resp.StatusCode, Code: codeRedirect,
			Message: fmt.Sprintf("registry answered with a redirect to %q, which the client does not follow (a registry URL must name the registry itself)", loc)}
	}
	e := &APIError{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: resp.Status}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 && s < 3600 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// jitter returns d plus up to 50 % at random, so clients restarting
// together do not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + rand.N(d/2+1)
}
