package redisstore

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Accounts binds names to keys in Redis: one key per name, written with
// SET NX, so of two nodes binding one name at once exactly one wins and
// the other reads the winner's key back.
type Accounts struct{ s *Store }

var _ ports.AccountStore = (*Accounts)(nil)

// NewAccounts is the account store on s.
func NewAccounts(s *Store) *Accounts { return &Accounts{s: s} }

type accountRecord struct {
	Name    string    `json:"name"`
	Key     []byte    `json:"key"`
	BoundAt time.Time `json:"bound_at"`
}

func (a *Accounts) nameKey(name domain.Username) string { return a.s.key("acct", name.Key()) }

// Bind binds id's name to id's key on first use (SET NX).
func (a *Accounts) Bind(ctx context.Context, id domain.Identity, now time.Time) error {
	b, err := json.Marshal(accountRecord{Name: id.Name().String(), Key: id.PublicKey(), BoundAt: now.UTC()})
	if err != nil {
		return fmt.Errorf("bind %s: %w", id.Name(), err)
	}
	won, err := a.s.rdb.SetNX(ctx, a.nameKey(id.Name()), b, 0).Result()
	if err != nil {
		return fmt.Errorf("bind %s: redis: %w", id.Name(), err)
	}
	if won {
		// The count is a gauge for /metrics; a crash between the two
		// commands undercounts by one and binds nothing twice.
		if err := a.s.rdb.Incr(ctx, a.s.key("acct-count")).Err(); err != nil {
			a.s.log.Warn("count account", "err", err)
		}
		return nil
	}
	have, err := a.Get(ctx, id.Name())
	if err != nil {
		return fmt.Errorf("bind %s: %w", id.Name(), err)
	}
	if !have.SameKey(id.PublicKey()) {
		return fmt.Errorf("%s: %w", id.Name(), domain.ErrNameTaken)
	}
	return nil
}

// Get returns the identity bound to name.
func (a *Accounts) Get(ctx context.Context, name domain.Username) (domain.Identity, error) {
	b, err := a.s.rdb.Get(ctx, a.nameKey(name)).Bytes()
	if isNil(err) {
		return domain.Identity{}, fmt.Errorf("account %s: %w", name, domain.ErrNotFound)
	}
	if err != nil {
		return domain.Identity{}, fmt.Errorf("account %s: redis: %w", name, err)
	}
	var rec accountRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return domain.Identity{}, fmt.Errorf("account %s: stored record: %w", name, err)
	}
	n, err := domain.ParseUsername(rec.Name)
	if err != nil {
		return domain.Identity{}, fmt.Errorf("account %s: stored name: %w", name, err)
	}
	return domain.NewIdentity(n, ed25519.PublicKey(rec.Key))
}

// Count is the number of bound names.
func (a *Accounts) Count(ctx context.Context) (int, error) {
	n, err := a.s.rdb.Get(ctx, a.s.key("acct-count")).Int()
	if isNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("count accounts: redis: %w", err)
	}
	return n, nil
}
