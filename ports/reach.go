package ports

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/chatx/chatx/domain"
)

// Errors of the reachability ports.
var (
	// ErrNotRegistered: the directory has no session yet (or lost it and is
	// registering again); try again later.
	ErrNotRegistered = errors.New("not registered with a directory")
	// ErrNoRendezvous: this directory offers no STUN, signalling or relay
	// (the in-memory or LAN-only directory).
	ErrNoRendezvous = errors.New("the directory offers no rendezvous")
	// ErrUnreachable: an online peer could not be reached by any path
	// (direct, punched or relayed). The message stays queued.
	ErrUnreachable = errors.New("peer is online but cannot be reached")
)

// MaxSignalSize bounds one signalling payload (docs/reachability.md).
const MaxSignalSize = 4096

// STUNBinding tells the QUIC transport where to send STUN Binding requests
// so that the registry observes this session's UDP mapping (its
// server-reflexive address) and the NAT's mapping behaviour.
type STUNBinding struct {
	// Servers are host:port UDP addresses of one STUN server; two ports of
	// the same host let the client tell endpoint-independent mapping from
	// endpoint-dependent.
	Servers []string
	// Username and Key authenticate requests as this session (STUN
	// USERNAME and MESSAGE-INTEGRITY, short-term credential mechanism,
	// RFC 8489 §9.1). They change with every new session.
	Username string
	Key      []byte
}

// RelayServer is one TURN server (RFC 8656) with short-lived credentials.
type RelayServer struct {
	// URL is a TURN URI (RFC 7065): turn:host:port?transport=udp|tcp, or
	// turns:host:port for TLS.
	URL      string
	Username string
	Password string
	Expires  time.Time
}

// Signal is a small payload one peer sent another through the directory.
// The directory authenticates the sending session: From is the name and key
// it is registered under. The payload's own signature (checked by the
// consumer) proves the key independently of the directory.
type Signal struct {
	From    domain.Identity
	Payload []byte
}

// Rendezvous is the directory's help in reaching a peer that cannot simply
// be dialled: STUN to learn our reflexive address, a signalling channel to
// an online peer, and relay credentials. The registry client implements it;
// directories without a server return ErrNoRendezvous.
type Rendezvous interface {
	// STUN returns where and how to send STUN Binding requests for the
	// current session. ErrNotRegistered while there is none.
	STUN(ctx context.Context) (STUNBinding, error)

	// Signal passes payload (at most MaxSignalSize bytes) to an online peer
	// through the directory, best effort. domain.ErrPeerOffline: the peer
	// has no live session. ErrNotRegistered: we have none.
	Signal(ctx context.Context, to domain.Identity, payload []byte) error

	// Signals streams the payloads peers sent us, until ctx is done (then
	// the channel is closed). Signals sent while no session was live are
	// lost; senders retry.
	Signals(ctx context.Context) (<-chan Signal, error)

	// Relays returns TURN servers with credentials for this session.
	// ErrNoRendezvous: the directory offers no relay.
	Relays(ctx context.Context) ([]RelayServer, error)
}

// PathConn is an authenticated, reliable, ordered byte stream to a peer on
// a path other than a direct TCP connection (a QUIC stream, directly or
// punched or relayed). Deadlines work as on a net.Conn.
type PathConn interface {
	net.Conn
	// Peer is the identity the path's own handshake authenticated.
	Peer() domain.Identity
	// Path says how the stream runs now.
	Path() domain.Path
}

// PeerStreams gives the message link a stream to a peer when no TCP
// connection can be made. The QUIC transport implements it: the stream rides
// the same QUIC connection the file transfers to that peer use.
type PeerStreams interface {
	// OpenStream returns a stream to the peer, connecting as needed (every
	// candidate in parallel, then hole punching through the Rendezvous,
	// then a relay). The remote end must prove to.Identity's key.
	// Errors: ErrUnreachable (with the reasons), *domain.KeyChangedError,
	// domain.ErrPeerOffline, ctx's error.
	OpenStream(ctx context.Context, to domain.Peer) (PathConn, error)

	// AcceptStream returns the next message-link stream a peer opened to
	// us, until ctx is done or the transport closes (net.ErrClosed).
	AcceptStream(ctx context.Context) (PathConn, error)
}

// PathReporter tells how a link to a peer runs now. The message link
// implements it; the zero Path means no link.
type PathReporter interface {
	Path(peer domain.Identity) domain.Path
}

// Attempt is one connection attempt as `chatx doctor` lists it.
type Attempt struct {
	Peer   domain.Username
	At     time.Time
	Path   domain.Path // what was tried or won
	Err    error       // nil when it won
	Detail string      // "punch: 12 probes, no answer" …
}

// Diagnostics is what the transports know about reachability, for
// `chatx doctor` and the TUI's reachability screen.
type Diagnostics interface {
	// NAT is the mapping behaviour last measured (NATUnknown if none).
	NAT() domain.NATMapping
	// Candidates are our own current candidates, typed
	// ("host 192.168.1.5:41000", "srflx 203.0.113.9:41000", "relay …").
	Candidates() []string
	// Attempts are the last connection attempts, newest first (bounded).
	Attempts() []Attempt
}
