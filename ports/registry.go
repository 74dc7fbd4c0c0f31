package ports

import (
	"context"
	"errors"
	"time"

	"github.com/chatx/chatx/domain"
)

// Errors of the registry service. The HTTP adapter maps each to a stable
// error code (docs/registry-api.md).
var (
	ErrChallengeInvalid = errors.New("challenge unknown, used or expired")
	ErrSessionInvalid   = errors.New("session unknown or expired")
	ErrBusy             = errors.New("registry busy, try again later")
)

// RegisterRequest is a signed registration as the registry service receives it.
type RegisterRequest struct {
	Proof     domain.RegistryProof
	Signature []byte
	// ObservedHost is the client address the server saw (no port), added to
	// the advertised endpoints; "" when there is none (in memory).
	ObservedHost string
}

// Session is what a successful registration returns: a random 256-bit token
// for heartbeats and the presence stream, and how long it lives without one.
type Session struct {
	Token     string
	ExpiresIn time.Duration
}

// RegistryService is the driving port of the registry server: the HTTP
// adapter (and the in-memory directory) call it. app.Registry implements it.
type RegistryService interface {
	// Challenge issues a fresh single-use challenge (domain.ChallengeSize
	// bytes) valid for a short time.
	Challenge(ctx context.Context) ([]byte, error)
	// Register checks the proof (action register, fresh challenge, valid
	// signature), binds the name to the key on first use and marks the user
	// online. domain.ErrNameTaken, domain.ErrBadSignature, ErrChallengeInvalid.
	Register(ctx context.Context, req RegisterRequest) (Session, error)
	// Heartbeat keeps a session online. ErrSessionInvalid: register again.
	Heartbeat(ctx context.Context, name domain.Username, token string) error
	// Unregister takes a user offline, with a signed proof (action unregister).
	Unregister(ctx context.Context, proof domain.RegistryProof, sig []byte) error
	// Disconnect ends a session whose presence stream closed.
	Disconnect(ctx context.Context, name domain.Username, token string) error
	// Lookup returns one user. domain.ErrUnknownPeer: no such name.
	Lookup(ctx context.Context, name domain.Username) (domain.Peer, error)
	// Online lists users online now.
	Online(ctx context.Context) ([]domain.Peer, error)
	// Watch streams presence changes (first the online set) until ctx is
	// done. A watcher that falls behind by more than its buffer is dropped:
	// its channel is closed and it should reconnect and resync.
	Watch(ctx context.Context) (<-chan domain.PresenceEvent, error)
	// Stats counts users and watchers for metrics.
	Stats(ctx context.Context) (RegistryStats, error)
}

// RegistryStats are gauges for /metrics.
type RegistryStats struct {
	Registered int
	Online     int
	Watchers   int
}

// AccountStore keeps which key each name is bound to. It is the registry's
// durable state; an embedded file store is the default, a shared store
// (Redis) lets several registry nodes serve one set of names.
type AccountStore interface {
	// Bind binds id's name (by its Key) to id's key on first use. nil when
	// the name is new or already bound to this key; domain.ErrNameTaken
	// when bound to another key.
	Bind(ctx context.Context, id domain.Identity, now time.Time) error
	// Get returns the identity bound to name; domain.ErrNotFound if none.
	Get(ctx context.Context, name domain.Username) (domain.Identity, error)
	// Count is the number of bound names.
	Count(ctx context.Context) (int, error)
}

// Presence is one online session in the registry.
type Presence struct {
	Identity  domain.Identity
	Endpoints domain.Endpoints
	TokenHash [32]byte // SHA-256 of the session token; the token itself is never stored
	ExpiresAt time.Time
	Since     time.Time
}

// PresenceStore keeps who is online, with expiry. In memory by default;
// shared between registry nodes when scaled out.
type PresenceStore interface {
	// Put inserts or replaces the presence of p's name.
	Put(ctx context.Context, p Presence) error
	// Get returns the presence of name; domain.ErrNotFound if offline.
	Get(ctx context.Context, name domain.Username) (Presence, error)
	// Delete removes name's presence; no error if absent.
	Delete(ctx context.Context, name domain.Username) error
	// List returns every presence.
	List(ctx context.Context) ([]Presence, error)
}
