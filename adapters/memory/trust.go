package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.TrustStore = (*TrustStore)(nil)

// DefaultMaxContacts caps the contacts a TrustStore pins.
const DefaultMaxContacts = 100_000

// TrustStore is a ports.TrustStore in memory, keyed by Username.Key so
// look-alike names share one pin. List is sorted by name. It is safe for
// concurrent use.
type TrustStore struct {
	mu       sync.RWMutex
	contacts map[string]domain.Contact
	max      int
}

// NewTrustStore returns an empty store with the default cap.
func NewTrustStore() *TrustStore { return NewTrustStoreWithCap(DefaultMaxContacts) }

// NewTrustStoreWithCap returns an empty store pinning at most max names.
func NewTrustStoreWithCap(max int) *TrustStore {
	return &TrustStore{contacts: make(map[string]domain.Contact), max: max}
}

// Get returns the contact pinned for name; domain.ErrNotFound if none.
func (s *TrustStore) Get(ctx context.Context, name domain.Username) (domain.Contact, error) {
	if err := ctx.Err(); err != nil {
		return domain.Contact{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.contacts[name.Key()]
	if !ok {
		return domain.Contact{}, fmt.Errorf("contact %s: %w", name, domain.ErrNotFound)
	}
	return c, nil
}

func checkIdentity(id domain.Identity) error {
	if id.IsZero() || id.Name().IsZero() {
		return fmt.Errorf("%w: empty identity", domain.ErrInvalidKey)
	}
	return nil
}

// Pin stores id on first use; *domain.KeyChangedError if another key is pinned.
func (s *TrustStore) Pin(ctx context.Context, id domain.Identity, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkIdentity(id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.contacts[id.Name().Key()]; ok {
		return c.CheckKey(id)
	}
	if len(s.contacts) >= s.max {
		return fmt.Errorf("pin %s: %w: %d contacts", id.Name(), domain.ErrTooLarge, len(s.contacts))
	}
	s.contacts[id.Name().Key()] = domain.Contact{Identity: id, PinnedAt: now}
	return nil
}

// Replace pins id whatever was pinned before; verified is reset.
func (s *TrustStore) Replace(ctx context.Context, id domain.Identity, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkIdentity(id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.contacts[id.Name().Key()]; !ok && len(s.contacts) >= s.max {
		return fmt.Errorf("pin %s: %w: %d contacts", id.Name(), domain.ErrTooLarge, len(s.contacts))
	}
	old := s.contacts[id.Name().Key()]
	s.contacts[id.Name().Key()] = domain.Contact{Identity: id, PinnedAt: now, Relation: old.Relation, Nickname: old.Nickname}
	return nil
}

// SetRelation records the user's decision about a pinned name.
func (s *TrustStore) SetRelation(ctx context.Context, name domain.Username, r domain.Relation) error {
	return s.update(ctx, name, func(c *domain.Contact) { c.Relation = r })
}

// SetNickname sets the local nickname of a pinned name.
func (s *TrustStore) SetNickname(ctx context.Context, name domain.Username, nickname string) error {
	if err := domain.ValidateNickname(nickname); err != nil {
		return err
	}
	return s.update(ctx, name, func(c *domain.Contact) { c.Nickname = nickname })
}

func (s *TrustStore) update(ctx context.Context, name domain.Username, f func(*domain.Contact)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contacts[name.Key()]
	if !ok {
		return fmt.Errorf("contact %s: %w", name, domain.ErrNotFound)
	}
	f(&c)
	s.contacts[name.Key()] = c
	return nil
}

// SetVerified marks a pinned contact verified or not; domain.ErrNotFound if none.
func (s *TrustStore) SetVerified(ctx context.Context, name domain.Username, verified bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update(ctx, name, func(c *domain.Contact) { c.Verified = verified })
}

// List returns every contact, sorted by name.
func (s *TrustStore) List(ctx context.Context) ([]domain.Contact, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	out := make([]domain.Contact, 0, len(s.contacts))
	for _, c := range s.contacts {
		out = append(out, c)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b domain.Contact) int {
		return strings.Compare(a.Identity.Name().String(), b.Identity.Name().String())
	})
	return out, nil
}
