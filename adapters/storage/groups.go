package storage

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// groupsSchema is migration 5. A log entry is kept field by field (members
// as JSON), so it is checked again, signature included, when it is read;
// deliveries are one row per (our message, member).
const groupsSchema = `
CREATE TABLE group_entries (
	seq        INTEGER PRIMARY KEY,
	group_id   BLOB    NOT NULL CHECK (length(group_id) = 16),
	hash       BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32),
	prev       BLOB    NOT NULL CHECK (length(prev) = 32),
	op         INTEGER NOT NULL,
	at_us      INTEGER NOT NULL,
	author     TEXT    NOT NULL,
	author_key BLOB    NOT NULL CHECK (length(author_key) = 32),
	members    TEXT    NOT NULL, -- JSON [{"name":…,"key":hex}]
	name       TEXT    NOT NULL,
	sig        BLOB    NOT NULL
);
CREATE INDEX group_entries_group ON group_entries (group_id, seq);

CREATE TABLE group_messages (
	seq       INTEGER PRIMARY KEY,
	group_id  BLOB    NOT NULL CHECK (length(group_id) = 16),
	id        BLOB    NOT NULL CHECK (length(id) = 16),
	epoch     BLOB    NOT NULL CHECK (length(epoch) = 32),
	sender    TEXT    NOT NULL,
	sent_sec  INTEGER NOT NULL,
	sent_nsec INTEGER NOT NULL,
	body      TEXT    NOT NULL,
	dir       TEXT    NOT NULL CHECK (dir IN ('out', 'in')),
	UNIQUE (group_id, id)
);
CREATE INDEX group_messages_history ON group_messages (group_id, sent_sec, sent_nsec, seq);

CREATE TABLE group_deliveries (
	msg_seq    INTEGER NOT NULL REFERENCES group_messages (seq),
	member     TEXT    NOT NULL,
	member_key TEXT    NOT NULL,
	state      TEXT    NOT NULL CHECK (state IN ('queued', 'sent', 'delivered', 'read', 'failed')),
	PRIMARY KEY (msg_seq, member_key)
) WITHOUT ROWID;
CREATE INDEX group_outbox ON group_deliveries (member_key, msg_seq) WHERE state IN ('queued', 'sent');
`

// Groups is the ports.GroupStore kept in the profile's database.
type Groups struct{ s *Store }

var _ ports.GroupStore = (*Groups)(nil)

// NewGroups gives the group store of s.
func NewGroups(s *Store) *Groups { return &Groups{s: s} }

type memberRow struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// SaveGroupEntries implements ports.GroupStore.
func (g *Groups) SaveGroupEntries(ctx context.Context, group domain.GroupID, entries []domain.GroupEntry) error {
	type row struct {
		e       domain.GroupEntry
		members string
	}
	rows := make([]row, 0, len(entries))
	for _, e := range entries {
		if e.Group() != group {
			return fmt.Errorf("save entry of group %s in %s: %w", e.Group(), group, domain.ErrBadGroupEntry)
		}
		ms := make([]memberRow, 0, len(e.Members()))
		for _, m := range e.Members() {
			ms = append(ms, memberRow{Name: m.Name().String(), Key: hex.EncodeToString(m.PublicKey())})
		}
		b, err := json.Marshal(ms)
		if err != nil {
			return fmt.Errorf("save entry of group %s: %w", group, err)
		}
		rows = append(rows, row{e, string(b)})
	}
	err := g.s.w.do(ctx, func(ctx context.Context) error {
		for _, r := range rows {
			e := r.e
			h, p := e.Hash(), e.Prev()
			if _, err := g.s.w.conn.ExecContext(ctx, `INSERT INTO group_entries
				(group_id, hash, prev, op, at_us, author, author_key, members, name, sig)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING`,
				group[:], h[:], p[:], int(e.Op()), e.At().UnixMicro(), e.Author().Name().String(),
				[]byte(e.Author().PublicKey()), r.members, e.Name(), e.Signature()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save log of group %s: %w", group, err)
	}
	return nil
}

// GroupEntries implements ports.GroupStore; every entry is verified again.
func (g *Groups) GroupEntries(ctx context.Context, group domain.GroupID) ([]domain.GroupEntry, error) {
	rows, err := g.s.readDB.QueryContext(ctx, `SELECT prev, op, at_us, author, author_key, members, name, sig
		FROM group_entries WHERE group_id = ? ORDER BY seq`, group[:])
	if err != nil {
		return nil, fmt.Errorf("read log of group %s: %w", group, err)
	}
	defer rows.Close()
	var out []domain.GroupEntry
	for rows.Next() {
		var prev, authorKey, sig []byte
		var op int
		var at int64
		var author, members, name string
		if err := rows.Scan(&prev, &op, &at, &author, &authorKey, &members, &name, &sig); err != nil {
			return nil, fmt.Errorf("read log of group %s: %w", group, err)
		}
		e, err := entryFromRow(group, prev, op, at, author, authorKey, members, name, sig)
		if err != nil {
			return nil, fmt.Errorf("read log of group %s: %w", group, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read log of group %s: %w", group, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("group %s: %w", group, domain.ErrUnknownGroup)
	}
	return out, nil
}

func entryFromRow(group domain.GroupID, prev []byte, op int, at int64, author string, authorKey []byte, members, name string, sig []byte) (domain.GroupEntry, error) {
	a, err := identityFromRow(author, authorKey)
	if err != nil {
		return domain.GroupEntry{}, err
	}
	var ms []memberRow
	if err := json.Unmarshal([]byte(members), &ms); err != nil {
		return domain.GroupEntry{}, fmt.Errorf("members: %w", err)
	}
	ids := make([]domain.Identity, 0, len(ms))
	for _, m := range ms {
		k, err := hex.DecodeString(m.Key)
		if err != nil {
			return domain.GroupEntry{}, fmt.Errorf("member key: %w", err)
		}
		id, err := identityFromRow(m.Name, k)
		if err != nil {
			return domain.GroupEntry{}, err
		}
		ids = append(ids, id)
	}
	var p domain.Epoch
	copy(p[:], prev)
	return domain.RestoreGroupEntry(group, p, domain.GroupOp(op), time.UnixMicro(at), a, ids, name, sig)
}

func identityFromRow(name string, key []byte) (domain.Identity, error) {
	u, err := domain.ParseUsername(name)
	if err != nil {
		return domain.Identity{}, err
	}
	return domain.NewIdentity(u, ed25519.PublicKey(key))
}

// GroupIDs implements ports.GroupStore.
func (g *Groups) GroupIDs(ctx context.Context) ([]domain.GroupID, error) {
	rows, err := g.s.readDB.QueryContext(ctx, `SELECT DISTINCT group_id FROM group_entries ORDER BY group_id`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	defer rows.Close()
	var out []domain.GroupID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		var id domain.GroupID
		copy(id[:], b)
		out = append(out, id)
	}
	return out, rows.Err()
}

const insertGroupMessageSQL = `INSERT INTO group_messages (group_id, id, epoch, sender, sent_sec, sent_nsec, body, dir)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

func groupMessageArgs(m domain.GroupMessage) []any {
	gid, id, ep := m.Group(), m.ID(), m.Epoch()
	sec, nsec := splitTime(m.SentAt())
	return []any{gid[:], id[:], ep[:], m.From().String(), sec, nsec, m.Body(), m.Direction().String()}
}

// SaveGroupOutgoing implements ports.GroupStore.
func (g *Groups) SaveGroupOutgoing(ctx context.Context, m domain.GroupMessage, to []domain.Username) error {
	err := g.s.w.do(ctx, func(ctx context.Context) error {
		res, err := g.s.w.conn.ExecContext(ctx, insertGroupMessageSQL, groupMessageArgs(m)...)
		if err != nil {
			return err
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return err
		}
		for _, u := range to {
			if _, err := g.s.w.conn.ExecContext(ctx, `INSERT INTO group_deliveries (msg_seq, member, member_key, state)
				VALUES (?, ?, ?, 'queued')`, seq, u.String(), u.Key()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save group message %s: %w", m.ID(), err)
	}
	return nil
}

// SaveGroupIncoming implements ports.GroupStore.
func (g *Groups) SaveGroupIncoming(ctx context.Context, m domain.GroupMessage) (bool, error) {
	var isNew bool
	err := g.s.w.do(ctx, func(ctx context.Context) error {
		res, err := g.s.w.conn.ExecContext(ctx, insertGroupMessageSQL+" ON CONFLICT (group_id, id) DO NOTHING", groupMessageArgs(m)...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		isNew = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("save group message %s from %s: %w", m.ID(), m.From(), err)
	}
	return isNew, nil
}

const groupMessageColumns = `m.group_id, m.id, m.epoch, m.sender, m.sent_sec, m.sent_nsec, m.body, m.dir`

func scanGroupMessage(sc scanner, extra ...any) (domain.GroupMessage, error) {
	var gid, id, ep []byte
	var sender, body, dir string
	var sec, nsec int64
	if err := sc.Scan(append([]any{&gid, &id, &ep, &sender, &sec, &nsec, &body, &dir}, extra...)...); err != nil {
		return domain.GroupMessage{}, err
	}
	from, err := domain.ParseUsername(sender)
	if err != nil {
		return domain.GroupMessage{}, err
	}
	d, err := parseDir(dir)
	if err != nil {
		return domain.GroupMessage{}, err
	}
	var g domain.GroupID
	var mid domain.MessageID
	var e domain.Epoch
	copy(g[:], gid)
	copy(mid[:], id)
	copy(e[:], ep)
	return domain.RestoreGroupMessage(mid, g, e, from, joinTime(sec, nsec), body, d), nil
}

// SetGroupDelivery implements ports.GroupStore.
func (g *Groups) SetGroupDelivery(ctx context.Context, group domain.GroupID, id domain.MessageID, member domain.Username, st domain.MessageState) (domain.GroupMessage, error) {
	var m domain.GroupMessage
	err := g.s.w.do(ctx, func(ctx context.Context) error {
		var seq int64
		var cur string
		row := g.s.w.conn.QueryRowContext(ctx, `SELECT `+groupMessageColumns+`, m.seq, d.state
			FROM group_messages m JOIN group_deliveries d ON d.msg_seq = m.seq
			WHERE m.group_id = ? AND m.id = ? AND d.member_key = ?`, group[:], id[:], member.Key())
		var err error
		m, err = scanGroupMessage(row, &seq, &cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delivery to %s: %w", member, domain.ErrNotFound)
		}
		if err != nil {
			return err
		}
		from, err := domain.ParseMessageState(cur)
		if err != nil {
			return err
		}
		if from == st {
			return nil
		}
		if !from.CanMove(st) {
			return &domain.TransitionError{What: "delivery of " + id.String() + " to " + member.String(), From: from.String(), To: st.String()}
		}
		_, err = g.s.w.conn.ExecContext(ctx, `UPDATE group_deliveries SET state = ? WHERE msg_seq = ? AND member_key = ?`, st.String(), seq, member.Key())
		return err
	})
	if err != nil {
		return domain.GroupMessage{}, fmt.Errorf("set delivery of group message %s: %w", id, err)
	}
	return m, nil
}

// GroupDeliveries implements ports.GroupStore.
func (g *Groups) GroupDeliveries(ctx context.Context, group domain.GroupID, id domain.MessageID) ([]domain.GroupDelivery, error) {
	rows, err := g.s.readDB.QueryContext(ctx, `SELECT d.member, d.state FROM group_messages m
		LEFT JOIN group_deliveries d ON d.msg_seq = m.seq
		WHERE m.group_id = ? AND m.id = ? ORDER BY d.member_key`, group[:], id[:])
	if err != nil {
		return nil, fmt.Errorf("deliveries of %s: %w", id, err)
	}
	defer rows.Close()
	found := false
	out := []domain.GroupDelivery{}
	for rows.Next() {
		found = true
		var member, state sql.NullString
		if err := rows.Scan(&member, &state); err != nil {
			return nil, fmt.Errorf("deliveries of %s: %w", id, err)
		}
		if !member.Valid {
			continue
		}
		u, err := domain.ParseUsername(member.String)
		if err != nil {
			return nil, err
		}
		s, err := domain.ParseMessageState(state.String)
		if err != nil {
			return nil, err
		}
		out = append(out, domain.GroupDelivery{Member: u, State: s})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("group message %s: %w", id, domain.ErrNotFound)
	}
	return out, nil
}

// GroupOutbox implements ports.GroupStore.
func (g *Groups) GroupOutbox(ctx context.Context, member domain.Username) ([]ports.GroupCopy, error) {
	rows, err := g.s.readDB.QueryContext(ctx, `SELECT `+groupMessageColumns+`, d.member, d.state
		FROM group_deliveries d JOIN group_messages m ON m.seq = d.msg_seq
		WHERE d.member_key = ? AND d.state IN ('queued', 'sent')
		ORDER BY m.sent_sec, m.sent_nsec, m.seq`, member.Key())
	if err != nil {
		return nil, fmt.Errorf("group outbox of %s: %w", member, err)
	}
	defer rows.Close()
	var out []ports.GroupCopy
	for rows.Next() {
		var name, state string
		m, err := scanGroupMessage(rows, &name, &state)
		if err != nil {
			return nil, fmt.Errorf("group outbox of %s: %w", member, err)
		}
		u, err := domain.ParseUsername(name)
		if err != nil {
			return nil, err
		}
		s, err := domain.ParseMessageState(state)
		if err != nil {
			return nil, err
		}
		out = append(out, ports.GroupCopy{Message: m, Member: u, State: s})
	}
	return out, rows.Err()
}

// GroupOutboxMembers implements ports.GroupStore.
func (g *Groups) GroupOutboxMembers(ctx context.Context) ([]domain.Username, error) {
	rows, err := g.s.readDB.QueryContext(ctx, `SELECT MIN(member) FROM group_deliveries
		WHERE state IN ('queued', 'sent') GROUP BY member_key ORDER BY member_key`)
	if err != nil {
		return nil, fmt.Errorf("group outbox members: %w", err)
	}
	defer rows.Close()
	var out []domain.Username
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		u, err := domain.ParseUsername(name)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// GroupHistory implements ports.GroupStore.
func (g *Groups) GroupHistory(ctx context.Context, group domain.GroupID, before time.Time, limit int) ([]domain.GroupMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	sec, nsec := int64(1<<62), int64(0)
	if !before.IsZero() {
		sec, nsec = splitTime(before)
	}
	rows, err := g.s.readDB.QueryContext(ctx, `SELECT `+groupMessageColumns+` FROM group_messages m
		WHERE m.group_id = ? AND (m.sent_sec < ? OR (m.sent_sec = ? AND m.sent_nsec < ?))
		ORDER BY m.sent_sec DESC, m.sent_nsec DESC, m.seq DESC LIMIT ?`, group[:], sec, sec, nsec, limit)
	if err != nil {
		return nil, fmt.Errorf("history of group %s: %w", group, err)
	}
	defer rows.Close()
	var out []domain.GroupMessage
	for rows.Next() {
		m, err := scanGroupMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("history of group %s: %w", group, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
