package memory

import (
	"context"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.KeyStore = (*KeyStore)(nil)

// KeyStore is a ports.KeyStore that keeps the identity in memory. It is safe
// for concurrent use.
type KeyStore struct {
	mu  sync.Mutex
	id  domain.LocalIdentity
	has bool
}

// NewKeyStore returns an empty key store (Load returns domain.ErrNoIdentity).
func NewKeyStore() *KeyStore { return &KeyStore{} }

// NewKeyStoreWith returns a key store holding id.
func NewKeyStoreWith(id domain.LocalIdentity) *KeyStore { return &KeyStore{id: id, has: true} }

// Load returns the saved identity or domain.ErrNoIdentity.
func (s *KeyStore) Load(ctx context.Context) (domain.LocalIdentity, error) {
	if err := ctx.Err(); err != nil {
		return domain.LocalIdentity{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.has {
		return domain.LocalIdentity{}, domain.ErrNoIdentity
	}
	return s.id, nil
}

// Save stores id, replacing any saved identity.
func (s *KeyStore) Save(ctx context.Context, id domain.LocalIdentity) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if id.IsZero() || len(id.PrivateKey()) == 0 {
		return domain.ErrInvalidKey
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id, s.has = id, true
	return nil
}
