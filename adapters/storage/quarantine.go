package storage

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chatx/chatx/domain"
)

// Quarantine is the message requests of a profile (ports.QuarantineStore):
// what strangers sent, held in the quarantine table. It shares the Store's
// database and writer; closing the Store closes it. The caps are checked
// inside the writer's transaction, so concurrent holds cannot pass them
// together. Its statements are not prepared: holds are bounded by the
// caps and the rate limits in front of them.
type Quarantine struct{ s *Store }

// NewQuarantine returns the quarantine kept in s.
func NewQuarantine(s *Store) *Quarantine { return &Quarantine{s: s} }

const quarantineColumns = "sender, public_key, kind, item_id, sent_sec, sent_nsec, received_sec, received_nsec, body"

// Hold stores item within limits; false if its sender has it held already.
func (q *Quarantine) Hold(ctx context.Context, item domain.HeldItem, limits domain.QuarantineLimits) (bool, error) {
	if item.From.IsZero() || item.From.Name().IsZero() {
		return false, fmt.Errorf("hold: %w: empty identity", domain.ErrInvalidKey)
	}
	body, sent, err := heldBody(item)
	if err != nil {
		return false, fmt.Errorf("hold from %s: %w", item.From.Name(), err)
	}
	key := item.Key()
	from := item.From.Name()
	size := item.Size()
	ss, sn := splitTime(sent)
	rs, rn := splitTime(item.ReceivedAt)
	held := false
	err = q.s.w.do(ctx, func(ctx context.Context) error {
		conn := q.s.w.conn
		var dup int
		if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM quarantine WHERE sender_key = ? AND kind = ? AND item_id = ?",
			from.Key(), item.Kind.String(), key[:]).Scan(&dup); err != nil {
			return err
		}
		if dup > 0 {
			return nil
		}
		var u domain.QuarantineUsage
		if err := conn.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM quarantine WHERE sender_key = ?",
			from.Key()).Scan(&u.PeerItems, &u.PeerBytes); err != nil {
			return err
		}
		if err := conn.QueryRowContext(ctx, "SELECT COALESCE(SUM(size), 0), COUNT(DISTINCT sender_key) FROM quarantine").
			Scan(&u.TotalBytes, &u.Peers); err != nil {
			return err
		}
		if err := limits.Admit(u, item); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO quarantine
			(sender_key, sender, public_key, kind, item_id, sent_sec, sent_nsec, received_sec, received_nsec, body, size)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			from.Key(), from.String(), []byte(item.From.PublicKey()), item.Kind.String(), key[:], ss, sn, rs, rn, body, size); err != nil {
			return err
		}
		held = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("hold from %s: %w", from, err)
	}
	return held, nil
}

// heldBody is what the body column holds for item, and its sent time.
func heldBody(item domain.HeldItem) (string, time.Time, error) {
	switch item.Kind {
	case domain.HeldChat:
		return item.Message.Body(), item.Message.SentAt(), nil
	case domain.HeldOffer:
		mr := manifestRow{Name: item.Manifest.Name, Files: make([]fileEntryRow, len(item.Manifest.Files))}
		for i, f := range item.Manifest.Files {
			mr.Files[i] = fileEntryRow{Path: f.Path, Size: f.Size, Hash: hex.EncodeToString(f.Hash[:])}
		}
		b, err := json.Marshal(mr)
		return string(b), item.ReceivedAt, err
	}
	return "", time.Time{}, fmt.Errorf("unknown held kind %d", item.Kind)
}

// Requests summarises every stranger with held items, oldest first.
func (q *Quarantine) Requests(ctx context.Context) ([]domain.Request, error) {
	rows, err := q.s.readDB.QueryContext(ctx, `SELECT MIN(sender), MIN(public_key), COUNT(*), SUM(size),
		MIN(received_sec * 1000000000 + received_nsec), MAX(received_sec * 1000000000 + received_nsec),
		SUM(kind = 'offer'), MIN(seq) AS first
		FROM quarantine GROUP BY sender_key ORDER BY first`)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	defer rows.Close()
	var out []domain.Request
	for rows.Next() {
		var name string
		var pub []byte
		var first, last, seq int64
		var r domain.Request
		if err := rows.Scan(&name, &pub, &r.Items, &r.Bytes, &first, &last, &r.Offers, &seq); err != nil {
			return nil, fmt.Errorf("list requests: %w", err)
		}
		id, err := storedIdentity(name, pub)
		if err != nil {
			return nil, fmt.Errorf("list requests: %w", err)
		}
		r.From, r.First, r.Last = id, time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return out, nil
}

// Held returns what from has waiting, in arrival order.
func (q *Quarantine) Held(ctx context.Context, from domain.Username) ([]domain.HeldItem, error) {
	rows, err := q.s.readDB.QueryContext(ctx, "SELECT "+quarantineColumns+" FROM quarantine WHERE sender_key = ? ORDER BY seq", from.Key())
	if err != nil {
		return nil, fmt.Errorf("requests of %s: %w", from, err)
	}
	defer rows.Close()
	var out []domain.HeldItem
	for rows.Next() {
		h, err := q.scanHeld(rows)
		if err != nil {
			return nil, fmt.Errorf("requests of %s: %w", from, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("requests of %s: %w", from, err)
	}
	return out, nil
}

func (q *Quarantine) scanHeld(sc scanner) (domain.HeldItem, error) {
	var name, kind, body string
	var pub, itemID []byte
	var ss, sn, rs, rn int64
	if err := sc.Scan(&name, &pub, &kind, &itemID, &ss, &sn, &rs, &rn, &body); err != nil {
		return domain.HeldItem{}, err
	}
	id, err := storedIdentity(name, pub)
	if err != nil {
		return domain.HeldItem{}, err
	}
	k, err := domain.ParseHeldKind(kind)
	if err != nil {
		return domain.HeldItem{}, err
	}
	if len(itemID) != 16 {
		return domain.HeldItem{}, fmt.Errorf("held item id of %d bytes", len(itemID))
	}
	received := joinTime(rs, rn)
	switch k {
	case domain.HeldChat:
		var mid domain.MessageID
		copy(mid[:], itemID)
		// Restored as the incoming, delivered message it was on arrival;
		// the recipient is filled in when the request is accepted.
		m := domain.RestoreMessage(mid, id.Name(), id.Name(), joinTime(ss, sn), body, domain.Incoming, domain.MessageDelivered)
		return domain.NewHeldChat(id, m, received), nil
	default:
		var tid domain.TransferID
		copy(tid[:], itemID)
		var mr manifestRow
		if err := json.Unmarshal([]byte(body), &mr); err != nil {
			return domain.HeldItem{}, fmt.Errorf("held offer: manifest: %w", err)
		}
		m := domain.Manifest{Name: mr.Name}
		for i, f := range mr.Files {
			h, err := hex.DecodeString(f.Hash)
			if err != nil || len(h) != 32 {
				return domain.HeldItem{}, fmt.Errorf("held offer: file %d: bad hash", i)
			}
			fe := domain.FileEntry{Path: f.Path, Size: f.Size}
			copy(fe.Hash[:], h)
			m.Files = append(m.Files, fe)
		}
		return domain.NewHeldOffer(id, tid, m, received), nil
	}
}

// Drop removes everything from holds.
func (q *Quarantine) Drop(ctx context.Context, from domain.Username) (int, error) {
	var n int64
	err := q.s.w.do(ctx, func(ctx context.Context) error {
		res, err := q.s.w.conn.ExecContext(ctx, "DELETE FROM quarantine WHERE sender_key = ?", from.Key())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("drop requests of %s: %w", from, err)
	}
	return int(n), nil
}

// storedIdentity rebuilds an identity the store wrote.
func storedIdentity(name string, pub []byte) (domain.Identity, error) {
	n, err := domain.ParseUsername(name)
	if err != nil {
		return domain.Identity{}, fmt.Errorf("stored name %q: %w", name, err)
	}
	id, err := domain.NewIdentity(n, ed25519.PublicKey(pub))
	if err != nil {
		return domain.Identity{}, fmt.Errorf("stored key of %s: %w", n, err)
	}
	return id, nil
}
