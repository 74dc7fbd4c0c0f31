package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chatx/chatx/domain"
)

// Contacts is the trust store of a profile (ports.TrustStore): the keys
// pinned for names and which of them the user verified. It shares the
// Store's database and writer; closing the Store closes it.
type Contacts struct{ s *Store }

// NewContacts returns the trust store kept in s.
func NewContacts(s *Store) *Contacts { return &Contacts{s: s} }

// Get returns the contact pinned for name; domain.ErrNotFound if none.
func (c *Contacts) Get(ctx context.Context, name domain.Username) (domain.Contact, error) {
	ct, err := scanContact(c.s.rs.getContact.QueryRowContext(ctx, name.Key()))
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Contact{}, fmt.Errorf("contact %s: %w", name, domain.ErrNotFound)
	}
	if err != nil {
		return domain.Contact{}, fmt.Errorf("contact %s: %w", name, err)
	}
	return ct, nil
}

// Pin stores id on first use. If another key is pinned for the name it
// stores nothing and returns *domain.KeyChangedError; the same key again is
// a no-op (the first pin's time and verification stay).
func (c *Contacts) Pin(ctx context.Context, id domain.Identity, now time.Time) error {
	if id.IsZero() || id.Name().IsZero() {
		return fmt.Errorf("pin: %w: empty identity", domain.ErrInvalidKey)
	}
	// Most calls pin a name that is pinned already: answer those from a read,
	// without a trip through the writer and its fsync.
	if old, err := c.Get(ctx, id.Name()); err == nil {
		if err := old.CheckKey(id); err != nil {
			return fmt.Errorf("pin %s: %w", id.Name(), err)
		}
		return nil
	}
	sec, nsec := splitTime(now)
	err := c.s.w.do(ctx, func(ctx context.Context) error {
		old, err := scanContact(c.s.ws.selectContact.QueryRowContext(ctx, id.Name().Key()))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err := c.s.ws.insertContact.ExecContext(ctx, id.Name().Key(), id.Name().String(), []byte(id.PublicKey()), sec, nsec)
			return err
		case err != nil:
			return err
		}
		return old.CheckKey(id)
	})
	if err != nil {
		return fmt.Errorf("pin %s: %w", id.Name(), err)
	}
	return nil
}

// Replace pins a new key the user accepted; verified is reset.
func (c *Contacts) Replace(ctx context.Context, id domain.Identity, now time.Time) error {
	if id.IsZero() || id.Name().IsZero() {
		return fmt.Errorf("replace pin: %w: empty identity", domain.ErrInvalidKey)
	}
	sec, nsec := splitTime(now)
	err := c.s.w.do(ctx, func(ctx context.Context) error {
		_, err := c.s.ws.replaceContact.ExecContext(ctx, id.Name().Key(), id.Name().String(), []byte(id.PublicKey()), sec, nsec)
		return err
	})
	if err != nil {
		return fmt.Errorf("replace pin of %s: %w", id.Name(), err)
	}
	return nil
}

// SetVerified marks a pinned contact verified or not; domain.ErrNotFound if none.
func (c *Contacts) SetVerified(ctx context.Context, name domain.Username, verified bool) error {
	err := c.s.w.do(ctx, func(ctx context.Context) error {
		res, err := c.s.ws.setVerified.ExecContext(ctx, verified, name.Key())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return domain.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set verified of %s: %w", name, err)
	}
	return nil
}

// SetRelation records what the user decided about a pinned name;
// domain.ErrNotFound if none.
func (c *Contacts) SetRelation(ctx context.Context, name domain.Username, r domain.Relation) error {
	if _, err := domain.ParseRelation(r.String()); err != nil {
		return fmt.Errorf("set relation of %s: %w", name, err)
	}
	return c.update(ctx, "relation", name, "UPDATE contacts SET relation = ? WHERE name_key = ?", r.String())
}

// SetNickname sets the local nickname of a pinned name; domain.ErrNotFound if none.
func (c *Contacts) SetNickname(ctx context.Context, name domain.Username, nickname string) error {
	if err := domain.ValidateNickname(nickname); err != nil {
		return fmt.Errorf("set nickname of %s: %w", name, err)
	}
	return c.update(ctx, "nickname", name, "UPDATE contacts SET nickname = ? WHERE name_key = ?", nickname)
}

// update runs an UPDATE of one contact's column (rare: the user's
// decisions), not prepared.
func (c *Contacts) update(ctx context.Context, what string, name domain.Username, query string, value any) error {
	err := c.s.w.do(ctx, func(ctx context.Context) error {
		res, err := c.s.w.conn.ExecContext(ctx, query, value, name.Key())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return domain.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set %s of %s: %w", what, name, err)
	}
	return nil
}

// List returns every contact, by name.
func (c *Contacts) List(ctx context.Context) ([]domain.Contact, error) {
	rows, err := c.s.rs.listContacts.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list contacts: %w", err)
	}
	defer rows.Close()
	var cs []domain.Contact
	for rows.Next() {
		ct, err := scanContact(rows)
		if err != nil {
			return nil, fmt.Errorf("list contacts: %w", err)
		}
		cs = append(cs, ct)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list contacts: %w", err)
	}
	return cs, nil
}
