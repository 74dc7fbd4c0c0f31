package storage

import (
	"context"
	"fmt"

	"github.com/chatx/chatx/ports"
)

// MailKeys is the profile's mailbox key store (ports.MailKeyStore): the
// private halves of our mailbox keys, in the mail_keys table of the
// profile's database (mode 0600, like the rest of the profile; the
// passphrase seals only the identity key file), deleted for good once every
// mail that could be sealed to them has expired.
type MailKeys struct{ s *Store }

var _ ports.MailKeyStore = (*MailKeys)(nil)

// NewMailKeys returns the mailbox key store kept in s.
func NewMailKeys(s *Store) *MailKeys { return &MailKeys{s: s} }

// SaveMailKey stores k, replacing one with its key ID.
func (m *MailKeys) SaveMailKey(ctx context.Context, k ports.MailKey) error {
	p := k.Prekey
	err := m.s.w.do(ctx, func(ctx context.Context) error {
		_, err := m.s.w.conn.ExecContext(ctx, `INSERT INTO mail_keys
			(key_id, suite, private, public, signature, created_sec, expires_sec, delete_sec) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (key_id) DO UPDATE SET suite = excluded.suite, private = excluded.private, public = excluded.public,
			signature = excluded.signature, created_sec = excluded.created_sec, expires_sec = excluded.expires_sec,
			delete_sec = excluded.delete_sec`,
			int64(p.KeyID), p.Suite, k.Private, p.Public, p.Signature, p.Created.Unix(), p.Expires.Unix(), k.DeleteAfter.Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("save mailbox key %d: %w", p.KeyID, err)
	}
	return nil
}

// MailKeys lists our keys, oldest first. The owner's name is not stored
// (a profile has one); Prekey.Name is left zero.
func (m *MailKeys) MailKeys(ctx context.Context) ([]ports.MailKey, error) {
	rows, err := m.s.readDB.QueryContext(ctx, `SELECT key_id, suite, private, public, signature, created_sec, expires_sec, delete_sec
		FROM mail_keys ORDER BY created_sec, key_id`)
	if err != nil {
		return nil, fmt.Errorf("list mailbox keys: %w", err)
	}
	defer rows.Close()
	var out []ports.MailKey
	for rows.Next() {
		var k ports.MailKey
		var id, created, expires, del int64
		if err := rows.Scan(&id, &k.Prekey.Suite, &k.Private, &k.Prekey.Public, &k.Prekey.Signature, &created, &expires, &del); err != nil {
			return nil, fmt.Errorf("list mailbox keys: %w", err)
		}
		k.Prekey.KeyID = uint32(id)
		k.Prekey.Created, k.Prekey.Expires, k.DeleteAfter = joinTime(created, 0), joinTime(expires, 0), joinTime(del, 0)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list mailbox keys: %w", err)
	}
	return out, nil
}

// DeleteMailKey deletes a key for good.
func (m *MailKeys) DeleteMailKey(ctx context.Context, keyID uint32) error {
	err := m.s.w.do(ctx, func(ctx context.Context) error {
		_, err := m.s.w.conn.ExecContext(ctx, "DELETE FROM mail_keys WHERE key_id = ?", int64(keyID))
		return err
	})
	if err != nil {
		return fmt.Errorf("delete mailbox key %d: %w", keyID, err)
	}
	return nil
}
