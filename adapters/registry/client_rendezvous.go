package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Bounds on the rendezvous answers the client accepts from a registry.
const (
	signalBuffer   = 64 // signals waiting for a slow Signals reader; the oldest is dropped beyond
	maxRelays      = 16
	maxRelayField  = 512
	maxCandidates  = 2*maxPeerEndpoints + 2
	noRelayRecheck = time.Minute // how long "no relay" is believed before asking again
)

// stunBinding turns the register answer's STUN service into where to send
// Binding requests: the registry's host (as in our registry URL) at each
// port.
func (c *Client) stunBinding(sj stunJSON) (ports.STUNBinding, error) {
	key, err := base64.StdEncoding.DecodeString(sj.Key)
	if err != nil || len(key) < 16 || len(key) > 64 {
		return ports.STUNBinding{}, errors.New("registry sent an unusable STUN key")
	}
	if sj.Username == "" || len(sj.Username) > maxSTUNUsername || len(sj.Ports) == 0 || len(sj.Ports) > ports.STUNServerPorts {
		return ports.STUNBinding{}, errors.New("registry sent an unusable STUN service")
	}
	b := ports.STUNBinding{Username: sj.Username, Key: key}
	for _, p := range sj.Ports {
		if p < 1 || p > 65535 {
			return ports.STUNBinding{}, fmt.Errorf("registry sent STUN port %d", p)
		}
		b.Servers = append(b.Servers, net.JoinHostPort(c.node().stunHost(), strconv.Itoa(p)))
	}
	return b, nil
}

// logRefused tells, once per distinct set, which advertised endpoints the
// registry did not publish and why.
func (c *Client) logRefused(refused []refusedJSON) {
	var sb strings.Builder
	for _, r := range refused {
		fmt.Fprintf(&sb, "%s[%d]=%q:%s ", r.List, r.Index, r.Endpoint, r.Reason)
	}
	c.mu.Lock()
	same := c.lastRefused == sb.String()
	c.lastRefused = sb.String()
	c.mu.Unlock()
	if same || len(refused) == 0 {
		return
	}
	for _, r := range refused[:min(len(refused), 2*maxPeerEndpoints)] {
		c.log.Info("registry refused an advertised endpoint", "list", r.List, "index", r.Index, "endpoint", r.Endpoint, "reason", r.Reason)
	}
}

// STUN returns the current session's STUN binding: after a new
// registration (a registry restart) it is the new session's.
func (c *Client) STUN(ctx context.Context) (ports.STUNBinding, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.sess == nil:
		return ports.STUNBinding{}, ports.ErrNotRegistered
	case len(c.sess.reg.stun.Servers) == 0:
		return ports.STUNBinding{}, fmt.Errorf("registry runs no STUN server: %w", ports.ErrNoRendezvous)
	}
	b := c.sess.reg.stun
	b.Servers, b.Key = slices.Clone(b.Servers), slices.Clone(b.Key)
	return b, nil
}

// sessionAuth is our name and token, or ErrNotRegistered.
func (c *Client) sessionAuth() (domain.Username, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return domain.Username{}, "", ports.ErrNotRegistered
	}
	return c.sess.me.Name(), c.sess.reg.token, nil
}

// sessionCall makes one request as our session. A forgotten session makes
// the session loop register again and reads as ErrNotRegistered.
func (c *Client) sessionCall(ctx context.Context, method, path string, in, out any) error {
	name, token, err := c.sessionAuth()
	if err != nil {
		return err
	}
	err = c.do(ctx, method, path+"?"+url.Values{"name": {name.String()}}.Encode(), token, in, out)
	if errors.Is(err, ports.ErrSessionInvalid) {
		c.kickSession()
		return fmt.Errorf("%w: %w", ports.ErrNotRegistered, err)
	}
	return err
}

// Signal passes payload to an online peer's session stream through the
// registry. domain.ErrPeerOffline: the peer has no live session stream.
func (c *Client) Signal(ctx context.Context, to domain.Identity, payload []byte) error {
	if len(payload) == 0 || len(payload) > ports.MaxSignalSize {
		return fmt.Errorf("signal %s: payload of %d bytes (1 to %d): %w", to.Name(), len(payload), ports.MaxSignalSize, domain.ErrTooLarge)
	}
	body := signalRequest{To: to.Name().String(), Payload: base64.StdEncoding.EncodeToString(payload)}
	if err := c.sessionCall(ctx, http.MethodPost, "/v1/signals", body, nil); err != nil {
		return fmt.Errorf("signal %s: %w", to.Name(), err)
	}
	return nil
}

type signalSub struct {
	ch chan ports.Signal
}

// offer hands sig over without blocking; when the reader is behind, the
// oldest waiting signal makes room (signals are retried by their senders,
// the newest matters most). Callers hold Client.mu.
func (s *signalSub) offer(sig ports.Signal) (dropped int) {
	for {
		select {
		case s.ch <- sig:
			return dropped
		default:
		}
		select {
		case <-s.ch:
			dropped++
		default:
		}
	}
}

// Signals streams the signals peers send to our session until ctx is done
// or the client closes (then the channel is closed).
func (c *Client) Signals(ctx context.Context) (<-chan ports.Signal, error) {
	s := &signalSub{ch: make(chan ports.Signal, signalBuffer)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("signals: %w", errClosed)
	}
	c.sigSubs[s] = struct{}{}
	c.ensureStreamLocked()
	c.untilDoneLocked(ctx, func() {
		delete(c.sigSubs, s)
		close(s.ch)
	})
	return s.ch, nil
}

// dispatchSignal decodes an `event: signal` and hands it to every Signals
// reader. A malformed one is dropped (logged at debug): one bad event must
// not cost the presence stream.
func (c *Client) dispatchSignal(data []byte) {
	sig, err := decodeSignal(data)
	if err != nil {
		c.log.Debug("signal dropped", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.sigSubs {
		if n := s.offer(sig); n > 0 {
			c.log.Debug("signals dropped for a slow reader", "count", n)
		}
	}
}

func decodeSignal(data []byte) (ports.Signal, error) {
	var ev signalEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return ports.Signal{}, fmt.Errorf("bad signal event: %w", err)
	}
	from, err := identityJSON(ev.From, ev.Key)
	if err != nil {
		return ports.Signal{}, fmt.Errorf("signal: %w", err)
	}
	name := from.Name()
	if len(ev.Payload) > maxSignalB64 {
		return ports.Signal{}, fmt.Errorf("signal from %s: payload too large", name)
	}
	payload, err := base64.StdEncoding.DecodeString(ev.Payload)
	if err != nil || len(payload) == 0 || len(payload) > ports.MaxSignalSize {
		return ports.Signal{}, fmt.Errorf("signal from %s: bad payload", name)
	}
	return ports.Signal{From: from, Payload: payload}, nil
}

// relayCache keeps the last relay answer until shortly before its first
// credential expires. Guarded by Client.mu; reset with every new session.
type relayCache struct {
	list  []ports.RelayServer
	none  bool
	until time.Time
}

// Relays returns TURN servers with credentials for our session, cached
// until shortly before they expire. ErrNoRendezvous: the registry offers no
// relay.
func (c *Client) Relays(ctx context.Context) ([]ports.RelayServer, error) {
	now := time.Now()
	c.mu.Lock()
	rc := c.relays
	c.mu.Unlock()
	if now.Before(rc.until) {
		if rc.none {
			return nil, fmt.Errorf("relays: %w", ports.ErrNoRendezvous)
		}
		return slices.Clone(rc.list), nil
	}
	var resp relaysResponse
	if err := c.sessionCall(ctx, http.MethodGet, "/v1/relays", nil, &resp); err != nil {
		return nil, fmt.Errorf("relays: %w", err)
	}
	list, until, err := parseRelays(resp, now)
	if err != nil {
		return nil, err
	}
	rc = relayCache{list: list, none: len(list) == 0, until: until}
	c.mu.Lock()
	c.relays = rc
	c.mu.Unlock()
	if rc.none {
		return nil, fmt.Errorf("relays: %w", ports.ErrNoRendezvous)
	}
	return slices.Clone(list), nil
}

// parseRelays checks a relays answer and says until when to trust it: a
// fifth of the shortest lifetime (at most a minute) before it ends.
func parseRelays(resp relaysResponse, now time.Time) ([]ports.RelayServer, time.Time, error) {
	if len(resp.Relays) > maxRelays {
		return nil, time.Time{}, fmt.Errorf("relays: registry sent %d: %w", len(resp.Relays), domain.ErrTooLarge)
	}
	if len(resp.Relays) == 0 {
		return nil, now.Add(noRelayRecheck), nil
	}
	var list []ports.RelayServer
	first := time.Time{}
	for _, r := range resp.Relays {
		if r.URL == "" || len(r.URL) > maxRelayField || len(r.Username) > maxRelayField || len(r.Password) > maxRelayField {
			return nil, time.Time{}, errors.New("relays: registry sent a malformed relay")
		}
		if !r.Expires.After(now) {
			return nil, time.Time{}, errors.New("relays: registry sent expired credentials (check the clocks)")
		}
		if first.IsZero() || r.Expires.Before(first) {
			first = r.Expires
		}
		list = append(list, ports.RelayServer{URL: r.URL, Username: r.Username, Password: r.Password, Expires: r.Expires})
	}
	margin := min(first.Sub(now)/5, time.Minute)
	return list, first.Add(-margin), nil
}

// candidates maps a peer object's typed candidates back to the domain,
// bounded and checked.
func (pj peerJSON) candidates() ([]domain.Candidate, error) {
	if len(pj.Candidates) > maxCandidates {
		return nil, fmt.Errorf("registry sent %d candidates: %w", len(pj.Candidates), domain.ErrTooLarge)
	}
	var out []domain.Candidate
	for _, c := range pj.Candidates {
		if len(c.Addr) > 255 || len(c.Type) > 16 || len(c.Net) > 8 || len(c.Scope) > 16 {
			return nil, errors.New("registry sent a malformed candidate")
		}
		out = append(out, domain.Candidate{Type: domain.CandidateType(c.Type), Net: c.Net, Addr: c.Addr, Scope: domain.AddrScope(c.Scope)})
	}
	return out, nil
}
