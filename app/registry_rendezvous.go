package app

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Sizes of a session's STUN credentials: a 16-byte random username (22
// characters of base64url) and a 32-byte random key.
const (
	stunUsernameBytes = 16
	stunKeyBytes      = 32
)

// Budget of presence changes a session's STUN observations may publish:
// a burst of 4 (first port, second port, a re-binding seen on both), then
// one per 5 s.
const (
	stunChangeBurst = 4
	stunChangeEvery = 5 * time.Second
)

// Authenticate checks a session token without renewing the session.
func (r *Registry) Authenticate(ctx context.Context, name domain.Username, token string) (ports.SessionInfo, error) {
	now := r.clock.Now()
	defer r.names.lock(name)()
	p, err := r.session(ctx, name, token, now)
	if err != nil {
		return ports.SessionInfo{}, err
	}
	return ports.SessionInfo{Identity: p.Identity, TokenHash: p.TokenHash}, nil
}

// LiveSession returns name's live session, domain.ErrPeerOffline if none.
func (r *Registry) LiveSession(ctx context.Context, name domain.Username) (ports.SessionInfo, error) {
	p, err := r.presence.Get(ctx, name)
	if errors.Is(err, domain.ErrNotFound) || (err == nil && !r.clock.Now().Before(p.ExpiresAt)) {
		return ports.SessionInfo{}, fmt.Errorf("%s: %w", name, domain.ErrPeerOffline)
	}
	if err != nil {
		return ports.SessionInfo{}, fmt.Errorf("get presence of %s: %w", name, err)
	}
	return ports.SessionInfo{Identity: p.Identity, TokenHash: p.TokenHash}, nil
}

// stunName is the name whose session has the STUN username.
func (r *Registry) stunName(username string) (domain.Username, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name, ok := r.stunIndex[username]
	if !ok {
		return domain.Username{}, ports.ErrSessionInvalid
	}
	return name, nil
}

// stunSession finds the live session of a STUN username of name. Callers
// hold name's lock.
func (r *Registry) stunSession(ctx context.Context, name domain.Username, username string) (ports.Presence, error) {
	p, err := r.presence.Get(ctx, name)
	if errors.Is(err, domain.ErrNotFound) {
		return ports.Presence{}, ports.ErrSessionInvalid
	}
	if err != nil {
		return ports.Presence{}, fmt.Errorf("get presence of %s: %w", name, err)
	}
	if subtle.ConstantTimeCompare([]byte(p.STUN.Username), []byte(username)) != 1 || !r.clock.Now().Before(p.ExpiresAt) {
		return ports.Presence{}, ports.ErrSessionInvalid
	}
	return p, nil
}

// STUNKey returns the short-term key of the session named by a STUN
// USERNAME.
func (r *Registry) STUNKey(ctx context.Context, username string) ([]byte, error) {
	name, err := r.stunName(username)
	if err != nil {
		return nil, err
	}
	defer r.names.lock(name)()
	p, err := r.stunSession(ctx, name, username)
	if err != nil {
		return nil, err
	}
	return slices.Clone(p.STUN.Key), nil
}

// ObserveBinding records the mapped address STUN port server saw for the
// session, and publishes a presence change when the published endpoints
// (the server-reflexive candidate, the NAT mapping) change.
func (r *Registry) ObserveBinding(ctx context.Context, username string, server int, mapped netip.AddrPort) error {
	if server < 0 || server >= ports.STUNServerPorts {
		return fmt.Errorf("observe binding: server port %d of %d", server, ports.STUNServerPorts)
	}
	if !mapped.IsValid() {
		return fmt.Errorf("observe binding: invalid mapped address")
	}
	now := r.clock.Now()
	name, err := r.stunName(username)
	if err != nil {
		return err
	}
	defer r.names.lock(name)()
	p, err := r.stunSession(ctx, name, username)
	if err != nil {
		return err
	}
	p.Mapped[server] = ports.MappedAddr{Addr: mapped, At: now}
	eps := derivePublished(p)
	if !sameEndpoints(eps, p.Endpoints) {
		p.Unpublished = true
	}
	p.Endpoints = eps
	// Each published change goes to every watcher: a session that keeps
	// changing its mapping (new source ports) gets a small budget of
	// changes; beyond it the change is stored (lookups see it) and
	// published by a later observation with budget — the client repeats
	// its requests every 25 s.
	p.Changes = min(stunChangeBurst, p.Changes+now.Sub(p.ChangesAt).Seconds()/stunChangeEvery.Seconds())
	p.ChangesAt = now
	publish := p.Unpublished && p.Changes >= 1
	if publish {
		p.Changes--
		p.Unpublished = false
	}
	if err := r.presence.Put(ctx, p); err != nil {
		return fmt.Errorf("put presence of %s: %w", p.Identity.Name(), err)
	}
	if publish {
		r.log.Debug("reflexive address observed", "peer", p.Identity.Name().String(), "nat", string(eps.NAT))
		r.publish(ctx, domain.PresenceEvent{Peer: domain.Peer{Identity: p.Identity, Online: true, Endpoints: eps, LastSeen: now}})
	}
	return nil
}

func sameEndpoints(a, b domain.Endpoints) bool {
	return a.NAT == b.NAT && slices.Equal(a.Link, b.Link) && slices.Equal(a.File, b.File) && slices.Equal(a.Candidates, b.Candidates)
}
