package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var (
	_ ports.AccountStore  = (*AccountStore)(nil)
	_ ports.PresenceStore = (*PresenceStore)(nil)
)

// Default caps of the registry's stores.
const (
	DefaultMaxAccounts  = 1 << 20
	DefaultMaxPresences = 1 << 20
)

// AccountStore is a ports.AccountStore in memory: names (by Username.Key)
// bound to keys. It is safe for concurrent use.
type AccountStore struct {
	mu       sync.RWMutex
	accounts map[string]account
	max      int
}

type account struct {
	id      domain.Identity
	boundAt time.Time
}

// NewAccountStore returns an empty store with the default cap.
func NewAccountStore() *AccountStore { return NewAccountStoreWithCap(DefaultMaxAccounts) }

// NewAccountStoreWithCap returns an empty store binding at most max names.
func NewAccountStoreWithCap(max int) *AccountStore {
	return &AccountStore{accounts: make(map[string]account), max: max}
}

// Bind binds id's name to id's key on first use; domain.ErrNameTaken when
// the name is bound to another key.
func (s *AccountStore) Bind(ctx context.Context, id domain.Identity, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkIdentity(id); err != nil {
		return err
	}
	k := id.Name().Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[k]; ok {
		if a.id.SameKey(id.PublicKey()) {
			return nil
		}
		return fmt.Errorf("bind %s: %w", id.Name(), domain.ErrNameTaken)
	}
	if len(s.accounts) >= s.max {
		return fmt.Errorf("bind %s: %w: %d accounts", id.Name(), domain.ErrTooLarge, len(s.accounts))
	}
	s.accounts[k] = account{id: id, boundAt: now}
	return nil
}

// Get returns the identity bound to name; domain.ErrNotFound if none.
func (s *AccountStore) Get(ctx context.Context, name domain.Username) (domain.Identity, error) {
	if err := ctx.Err(); err != nil {
		return domain.Identity{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.accounts[name.Key()]
	if !ok {
		return domain.Identity{}, fmt.Errorf("account %s: %w", name, domain.ErrNotFound)
	}
	return a.id, nil
}

// Count is the number of bound names.
func (s *AccountStore) Count(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.accounts), nil
}

// PresenceStore is a ports.PresenceStore in memory, keyed by Username.Key.
// The registry server uses it as its single-node presence table, so every
// operation is O(1) except List (O(n)). It stores presences as given and
// does not drop expired ones: expiry (ExpiresAt) is the registry service's
// decision, made with its clock. Endpoints are copied on the way in and out
// so callers never share slices with the table. It is safe for concurrent use.
type PresenceStore struct {
	mu  sync.RWMutex
	m   map[string]ports.Presence
	max int
}

// NewPresenceStore returns an empty store with the default cap.
func NewPresenceStore() *PresenceStore { return NewPresenceStoreWithCap(DefaultMaxPresences) }

// NewPresenceStoreWithCap returns an empty store holding at most max presences.
func NewPresenceStoreWithCap(max int) *PresenceStore {
	return &PresenceStore{m: make(map[string]ports.Presence), max: max}
}

func cloneEndpoints(e domain.Endpoints) domain.Endpoints { return e.Clone() }

func clonePresence(p ports.Presence) ports.Presence { return p.Clone() }

// Put inserts or replaces the presence of p's name.
func (s *PresenceStore) Put(ctx context.Context, p ports.Presence) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkIdentity(p.Identity); err != nil {
		return err
	}
	k := p.Identity.Name().Key()
	p = clonePresence(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok && len(s.m) >= s.max {
		return fmt.Errorf("presence %s: %w: %d online", p.Identity.Name(), domain.ErrTooLarge, len(s.m))
	}
	s.m[k] = p
	return nil
}

// Get returns the presence of name; domain.ErrNotFound if there is none.
func (s *PresenceStore) Get(ctx context.Context, name domain.Username) (ports.Presence, error) {
	if err := ctx.Err(); err != nil {
		return ports.Presence{}, err
	}
	s.mu.RLock()
	p, ok := s.m[name.Key()]
	s.mu.RUnlock()
	if !ok {
		return ports.Presence{}, fmt.Errorf("presence %s: %w", name, domain.ErrNotFound)
	}
	return clonePresence(p), nil
}

// Delete removes name's presence; no error if absent.
func (s *PresenceStore) Delete(ctx context.Context, name domain.Username) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.m, name.Key())
	s.mu.Unlock()
	return nil
}

// List returns every presence, in no particular order.
func (s *PresenceStore) List(ctx context.Context) ([]ports.Presence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	out := make([]ports.Presence, 0, len(s.m))
	for _, p := range s.m {
		out = append(out, clonePresence(p))
	}
	s.mu.RUnlock()
	return out, nil
}
