package ports

import (
	"context"
	"errors"

	"github.com/chatx/chatx/domain"
)

// ErrDirectoryCertChanged: the directory presented a certificate other than
// the pinned one; someone may be intercepting the connection. Retrying does
// not help until the user updates the pin. Directory adapters wrap it.
var ErrDirectoryCertChanged = errors.New("directory certificate does not match the pin")

// Directory is the client's view of the registry: it binds our name to our
// key, keeps us listed as online, finds peers and tells who is online, live.
// The registry adapter is the real one; several directories (LAN discovery,
// registry) can later be composed behind this same interface.
type Directory interface {
	// Register binds me's name to me's key (proving possession of the key)
	// and publishes eps. It returns once the registry accepted us, then keeps
	// us online by itself — heartbeats, reconnects with backoff,
	// re-registering after a registry restart — until Unregister or until the
	// adapter is closed. domain.ErrNameTaken: the name is bound to another
	// key; domain.ErrInvalidUsername: the registry refused the name.
	Register(ctx context.Context, me domain.LocalIdentity, eps domain.Endpoints) error

	// Unregister takes us offline (signed, so nobody else can log us out).
	Unregister(ctx context.Context) error

	// Lookup finds one user, online or not. domain.ErrUnknownPeer: no such name.
	Lookup(ctx context.Context, name domain.Username) (domain.Peer, error)

	// Online lists the users online now.
	Online(ctx context.Context) ([]domain.Peer, error)

	// Watch streams changes: first a DirectoryEvent per user online now, then
	// every change, live, plus connection-state events. The channel is
	// closed when ctx is done or the directory is closed; a watcher that
	// does not keep up loses presence events only after a resync event
	// (Kind Resync) tells it to call Online again.
	Watch(ctx context.Context) (<-chan DirectoryEvent, error)
}

// DirectoryEventKind says what a DirectoryEvent reports.
type DirectoryEventKind int

// Kinds of directory events.
const (
	PeerChanged  DirectoryEventKind = iota + 1 // Peer came online, went offline or moved
	Connected                                  // the directory is reachable (again)
	Disconnected                               // the directory is unreachable; Err says why
	Resync                                     // events were lost: list Online again
)

// DirectoryEvent is one item of a Watch stream.
type DirectoryEvent struct {
	Kind DirectoryEventKind
	Peer domain.Peer // for PeerChanged
	Err  error       // for Disconnected
}
