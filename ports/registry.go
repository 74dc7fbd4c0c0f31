package ports

import (
	"context"
	"errors"
	"net/netip"
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
	// ObservedHost is the client address the server saw (no port): the
	// address policy keeps a public advertised address only when it is this
	// one, and loopback ones only when this is loopback; "" when there is
	// none (in memory).
	ObservedHost string
}

// STUNCredentials authenticate a session's STUN Binding requests (USERNAME
// and short-term MESSAGE-INTEGRITY, RFC 8489 §9.1): a random per-session
// username (not the token) and a random 32-byte key.
type STUNCredentials struct {
	Username string
	Key      []byte
}

// RefusedEndpoint is an advertised endpoint the address policy dropped:
// which list ("link" or "file"), its position, the endpoint itself and a
// stable reason code (app.Refused…).
type RefusedEndpoint struct {
	List     string
	Index    int
	Endpoint string
	Reason   string
}

// SessionInfo is a live session as the registry knows it.
type SessionInfo struct {
	Identity  domain.Identity
	TokenHash [32]byte // SHA-256 of the session token
}

// MappedAddr is a server-reflexive address one STUN server port observed
// for a session, and when.
type MappedAddr struct {
	Addr netip.AddrPort
	At   time.Time
}

// STUNServerPorts is how many UDP ports the registry's STUN server answers
// on: two, so that the mapping behaviour of a NAT can be told.
const STUNServerPorts = 2

// Session is what a successful registration returns: a random 256-bit token
// for heartbeats and the presence stream, and how long it lives without one.
type Session struct {
	Token     string
	ExpiresIn time.Duration
	// STUN authenticates this session's STUN Binding requests.
	STUN STUNCredentials
	// Refused lists the advertised endpoints the address policy dropped.
	Refused []RefusedEndpoint
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

	// Authenticate checks a session token without renewing it (for the
	// signalling and relay routes). ErrSessionInvalid: no such live session.
	Authenticate(ctx context.Context, name domain.Username, token string) (SessionInfo, error)
	// LiveSession returns name's live session. domain.ErrPeerOffline: none.
	LiveSession(ctx context.Context, name domain.Username) (SessionInfo, error)
	// STUNKey returns the short-term key of the live session whose STUN
	// username is username. ErrSessionInvalid: no such session.
	STUNKey(ctx context.Context, username string) ([]byte, error)
	// ObserveBinding records that STUN server port number server (0 or 1)
	// saw an authenticated Binding request of username's session from
	// mapped. The registry derives the server-reflexive candidate and the
	// NAT mapping from it and tells watchers when they change.
	// ErrSessionInvalid: no such session.
	ObserveBinding(ctx context.Context, username string, server int, mapped netip.AddrPort) error
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
	// Host are the advertised endpoints the address policy kept; Pending
	// the public ones it could not justify yet (admitted when the STUN
	// mapping shows the same IP). Endpoints is derived from them and Mapped.
	Host    domain.Endpoints
	Pending domain.Endpoints
	STUN    STUNCredentials
	Mapped  [STUNServerPorts]MappedAddr
	// Changes is the budget of presence changes STUN observations may
	// still publish (a token bucket refilled over time, as of ChangesAt);
	// Unpublished: Endpoints changed while the budget was empty, so the
	// next observation with budget publishes them.
	Changes     float64
	ChangesAt   time.Time
	Unpublished bool
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

// Clone is a deep copy of p, for presence stores that hand out copies.
func (p Presence) Clone() Presence {
	p.Endpoints, p.Host, p.Pending = p.Endpoints.Clone(), p.Host.Clone(), p.Pending.Clone()
	p.STUN.Key = append([]byte(nil), p.STUN.Key...)
	return p
}
