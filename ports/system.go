package ports

import (
	"context"
	"time"

	"github.com/chatx/chatx/domain"
)

// Clock tells the time. Use-cases never call time.Now directly, so tests can
// drive time.
type Clock interface {
	Now() time.Time
}

// KeyStore keeps the profile's own identity (name and private key).
type KeyStore interface {
	// Load returns the saved identity, or domain.ErrNoIdentity when this
	// profile has none yet. A sealed key that cannot be opened (wrong
	// passphrase, damaged file) is an error that wraps neither.
	Load(ctx context.Context) (domain.LocalIdentity, error)
	// Save stores the identity durably with owner-only permissions. It
	// replaces a saved identity only when the caller means to (first run).
	Save(ctx context.Context, id domain.LocalIdentity) error
}
