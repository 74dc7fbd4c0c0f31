package storage

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Bounds of what one read returns or accepts.
const (
	// MaxOutbox bounds Outbox: the oldest MaxOutbox undelivered messages to
	// a peer; the rest follow once those are delivered.
	MaxOutbox = 100_000
	// MaxHistory bounds the limit of History and Search.
	MaxHistory = 10_000
	// MaxSearchQuery bounds a search query, in bytes.
	MaxSearchQuery = 1024
	// MaxSearchWords bounds the words of a search query.
	MaxSearchWords = 32
	// maxTransfers bounds List of transfers.
	maxTransfers = 100_000
)

// SaveOutgoing stores a new outgoing message in history and in the outbox.
// It is durable when it returns nil. Saving a second message with the same
// ID is an error.
func (s *Store) SaveOutgoing(ctx context.Context, m domain.Message) error {
	return s.SaveOutgoingStaged(ctx, m, nil)
}

// SaveOutgoingStaged is SaveOutgoing that also calls committed, from the
// writer's goroutine, once the message is committed to the write-ahead log
// and before the fsync that makes it durable (see ports.OutboxStaging).
func (s *Store) SaveOutgoingStaged(ctx context.Context, m domain.Message, committed func()) error {
	if m.Direction() != domain.Outgoing {
		return fmt.Errorf("save outgoing message %s: direction is %s", m.ID(), m.Direction())
	}
	row, err := messageToRow(m)
	if err != nil {
		return fmt.Errorf("save outgoing message %s: %w", m.ID(), err)
	}
	rows := s.outRows
	if m.State() != rowState(false) {
		rows = nil
	}
	err = s.w.doRow(ctx, rows, &row, func(ctx context.Context) error {
		if _, err := s.ws.insertOutgoing.ExecContext(ctx, row.args()...); err != nil {
			return err
		}
		s.messageStored()
		return nil
	}, committed)
	if err != nil {
		return fmt.Errorf("save outgoing message %s: %w", m.ID(), err)
	}
	return nil
}

// SaveIncoming stores a received message unless the same sender's message
// with the same ID is stored already, and reports whether it was new. It is
// durable when it returns.
func (s *Store) SaveIncoming(ctx context.Context, m domain.Message) (bool, error) {
	if m.Direction() != domain.Incoming {
		return false, fmt.Errorf("save incoming message %s: direction is %s", m.ID(), m.Direction())
	}
	row, err := messageToRow(m)
	if err != nil {
		return false, fmt.Errorf("save incoming message %s: %w", m.ID(), err)
	}
	in := &incomingRow{row: row}
	rows := s.inRows
	if m.State() != rowState(true) {
		rows = nil
	}
	err = s.w.doRow(ctx, rows, in, func(ctx context.Context) error {
		res, err := s.ws.insertIncoming.ExecContext(ctx, row.args()...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		in.added = n == 1
		if in.added {
			s.messageStored()
		}
		return err
	}, nil)
	if err != nil {
		return false, fmt.Errorf("save incoming message %s: %w", m.ID(), err)
	}
	return in.added, nil
}

// incomingRow is a received message on its way into a multi-row insert,
// and whether it was new.
type incomingRow struct {
	row   messageRow
	added bool
}

// rowArgs appends the parameters of r in a multi-row insert to args
// (direction and state are the statement's literals, see multiInsert).
func rowArgs(args []any, r *messageRow) []any {
	return append(args, r.ID, r.Sender, r.SenderKey, r.Recipient, r.PeerKey, r.SentSec, r.SentNsec, r.Body)
}

// newRowBatches makes the multi-row writers of SaveOutgoing(Staged) and
// SaveIncoming: the writer stores consecutive saves of a batch in one
// INSERT (which pays the statement's setup — cursors on the table and
// each index, the CHECKs' lookup tables — once instead of per message).
func (s *Store) newRowBatches() {
	var args []any // writer goroutine only
	bind := func(ctx context.Context, items []any, incoming bool, row func(any) *messageRow) (*sql.Stmt, error) {
		st, err := s.ws.insertRows(ctx, len(items), incoming)
		if err != nil {
			return nil, err
		}
		args = args[:0]
		for _, it := range items {
			args = rowArgs(args, row(it))
		}
		return st, nil
	}
	s.outRows = &rowBatch{max: maxRowsPerInsert, write: func(ctx context.Context, items []any) error {
		st, err := bind(ctx, items, false, func(it any) *messageRow { return it.(*messageRow) })
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx, args...)
		clear(args)
		if err != nil {
			return err
		}
		for range items {
			s.messageStored()
		}
		return nil
	}}
	s.inRows = &rowBatch{max: maxRowsPerInsert, write: func(ctx context.Context, items []any) error {
		st, err := bind(ctx, items, true, func(it any) *messageRow { return &it.(*incomingRow).row })
		if err != nil {
			return err
		}
		res, err := st.ExecContext(ctx, args...)
		clear(args)
		if err != nil {
			return err
		}
		added, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if int(added) == len(items) { // all new: the common case
			for _, it := range items {
				it.(*incomingRow).added = true
				s.messageStored()
			}
			return nil
		}
		// Some were stored already (or repeated in the batch): the rows
		// this statement inserted are the last `added` by seq. A new row's
		// seq (INTEGER PRIMARY KEY, no AUTOINCREMENT) is the largest so
		// far plus one, and nothing else writes during the statement, so
		// they are the range up to the last inserted rowid.
		last, err := res.LastInsertId()
		if err != nil {
			return err
		}
		inserted := map[string]int{}
		if added > 0 {
			if inserted, err = s.insertedRows(ctx, last-added, last); err != nil {
				return err
			}
		}
		for _, it := range items {
			in := it.(*incomingRow)
			k := in.row.SenderKey + "\x00" + string(in.row.ID)
			in.added = inserted[k] > 0
			if in.added {
				inserted[k]--
				s.messageStored()
			}
		}
		return nil
	}}
}

// insertedRows counts the messages with from < seq <= to by sender key
// and ID (joined by a NUL). Writer goroutine only.
func (s *Store) insertedRows(ctx context.Context, from, to int64) (map[string]int, error) {
	rows, err := s.ws.selectSeqs.QueryContext(ctx, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	inserted := make(map[string]int, to-from)
	var key string
	var id []byte
	for rows.Next() {
		if err := rows.Scan(&key, &id); err != nil {
			return nil, err
		}
		inserted[key+"\x00"+string(id)]++
	}
	return inserted, rows.Err()
}

// SetState moves one of our messages to state next if the domain's rules
// allow it, and returns it as stored.
func (s *Store) SetState(ctx context.Context, id domain.MessageID, next domain.MessageState) (domain.Message, error) {
	st, ok := s.ws.moveTo[next]
	if !ok {
		return domain.Message{}, fmt.Errorf("set state of message %s: unknown state %d", id, int(next))
	}
	var out domain.Message
	err := s.w.do(ctx, func(ctx context.Context) error {
		// The common case is one statement: the UPDATE matches only rows in
		// a state the domain allows to move to next.
		m, err := scanMessage(st.QueryRowContext(ctx, id[:]))
		if err == nil {
			out = m
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// Nothing moved: unknown message, already in next, or a refused move.
		m, err = scanMessage(s.ws.selectOutgoing.QueryRowContext(ctx, id[:]))
		if errors.Is(err, sql.ErrNoRows) {
			return domain.ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := m.MoveTo(next); err != nil {
			return err
		}
		if m.State() != next {
			return fmt.Errorf("state %s moved to %s but the update matched nothing", m.State(), next)
		}
		out = m
		return nil
	})
	if err != nil {
		return domain.Message{}, fmt.Errorf("set state of message %s to %s: %w", id, next, err)
	}
	return out, nil
}

// maxMarks bounds the marks of one MarkStates call.
const maxMarks = 1 << 14

// MarkStates moves each listed message of ours to its state where the
// domain allows it, with one UPDATE per target state in one transaction
// shared with whatever else the writer commits, and returns the marks that
// moved a message, in the order given. It returns once committed, before
// the next fsync makes it durable (ports.MessageMarks says why a lost mark
// is harmless); a batch of marks alone costs no fsync.
func (s *Store) MarkStates(ctx context.Context, marks []ports.StateMark) ([]ports.StateMark, error) {
	if len(marks) == 0 {
		return nil, nil
	}
	if len(marks) > maxMarks {
		return nil, fmt.Errorf("mark %d messages, at most %d: %w", len(marks), maxMarks, domain.ErrTooLarge)
	}
	type group struct {
		state domain.MessageState
		ids   []byte // a JSON array of hex IDs
		n     int    // distinct IDs
	}
	var groups []*group
	seen := make(map[ports.StateMark]struct{}, len(marks))
	for _, mk := range marks {
		if _, ok := s.ws.markTo[mk.State]; !ok {
			return nil, fmt.Errorf("mark message %s: unknown state %d", mk.ID, int(mk.State))
		}
		if _, dup := seen[mk]; dup {
			continue
		}
		seen[mk] = struct{}{}
		var g *group
		for _, h := range groups {
			if h.state == mk.State {
				g = h
				break
			}
		}
		if g == nil {
			g = &group{state: mk.State, ids: make([]byte, 0, 2+35*len(marks))}
			g.ids = append(g.ids, '[')
			groups = append(groups, g)
		}
		if g.n > 0 {
			g.ids = append(g.ids, ',')
		}
		g.ids = append(g.ids, '"')
		g.ids = hex.AppendEncode(g.ids, mk.ID[:])
		g.ids = append(g.ids, '"')
		g.n++
	}
	moved := make(map[domain.MessageID]bool, len(marks))
	for _, g := range groups {
		g.ids = append(g.ids, ']')
		var ids [][]byte
		all := false
		err := s.w.doLazy(ctx, func(ctx context.Context) error {
			ids, all = ids[:0], false
			var err error
			all, err = s.markAll(ctx, g.state, string(g.ids), g.n)
			if err != nil || all {
				return err
			}
			rows, err := s.ws.markTo[g.state].QueryContext(ctx, string(g.ids))
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id []byte
				if err := rows.Scan(&id); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("mark %d messages %s: %w", len(marks), g.state, err)
		}
		if all {
			for _, mk := range marks {
				if mk.State == g.state {
					moved[mk.ID] = true
				}
			}
			continue
		}
		for _, b := range ids {
			var id domain.MessageID
			if len(b) == len(id) {
				copy(id[:], b)
				moved[id] = true
			}
		}
	}
	out := make([]ports.StateMark, 0, len(moved))
	for _, mk := range marks {
		if moved[mk.ID] {
			out = append(out, mk)
		}
	}
	return out, nil
}

// markAll moves the n messages of ids (a JSON array of hex IDs) to next
// when every one of them may move there, and reports whether they did; if
// not, it has changed nothing (its UPDATE is undone), and the caller runs
// the UPDATE … RETURNING that says which move. Most batches of marks move
// every message, and an UPDATE that returns no rows costs less. Writer
// goroutine only.
func (s *Store) markAll(ctx context.Context, next domain.MessageState, ids string, n int) (bool, error) {
	if _, err := s.ws.savepoint.ExecContext(ctx); err != nil {
		return false, err
	}
	res, err := s.ws.markAll[next].ExecContext(ctx, ids)
	if err == nil {
		var k int64
		if k, err = res.RowsAffected(); err == nil && int(k) == n {
			_, err = s.ws.release.ExecContext(ctx)
			return err == nil, err
		}
	}
	if _, rerr := s.ws.rollbackTo.ExecContext(ctx); rerr != nil {
		return false, rerr
	}
	if _, rerr := s.ws.release.ExecContext(ctx); rerr != nil {
		return false, rerr
	}
	return false, err
}

// Outbox lists our messages to peer that are queued or sent, oldest first
// (at most MaxOutbox).
func (s *Store) Outbox(ctx context.Context, peer domain.Username) ([]domain.Message, error) {
	ms, err := s.queryMessages(ctx, s.rs.outbox, peer.Key(), MaxOutbox)
	if err != nil {
		return nil, fmt.Errorf("outbox to %s: %w", peer, err)
	}
	return ms, nil
}

// OutboxPeers lists the peers with messages in the outbox, by name.
func (s *Store) OutboxPeers(ctx context.Context) ([]domain.Username, error) {
	rows, err := s.rs.outboxPeers.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("outbox peers: %w", err)
	}
	defer rows.Close()
	var peers []domain.Username
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("outbox peers: %w", err)
		}
		u, err := domain.ParseUsername(name)
		if err != nil {
			return nil, fmt.Errorf("outbox peers: stored name %q: %w", name, err)
		}
		peers = append(peers, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox peers: %w", err)
	}
	return peers, nil
}

// History returns at most limit (capped at MaxHistory) messages with peer
// sent strictly before before (the zero time: the newest), oldest first.
func (s *Store) History(ctx context.Context, peer domain.Username, before time.Time, limit int) ([]domain.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	limit = min(limit, MaxHistory)
	var ms []domain.Message
	var err error
	if before.IsZero() {
		ms, err = s.queryMessages(ctx, s.rs.historyLatest, peer.Key(), limit)
	} else {
		sec, nsec := splitTime(before)
		ms, err = s.queryMessages(ctx, s.rs.historyBefore, peer.Key(), sec, sec, nsec, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("history with %s: %w", peer, err)
	}
	for i, j := 0, len(ms)-1; i < j; i, j = i+1, j-1 {
		ms[i], ms[j] = ms[j], ms[i]
	}
	return ms, nil
}

// Search returns at most limit (capped at MaxHistory) messages whose body
// holds every word of query, newest first. A word is a run of letters,
// marks and digits (punctuation and symbols separate words, as in the
// index); matching ignores case and diacritics, and each word of the query
// also matches the start of a longer word ("deliv" finds "delivery"). A
// query without any word finds nothing. The query is never interpreted as
// FTS5 syntax.
func (s *Store) Search(ctx context.Context, query string, limit int) ([]domain.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	if len(query) > MaxSearchQuery {
		return nil, fmt.Errorf("search: query of %d bytes, at most %d: %w", len(query), MaxSearchQuery, domain.ErrTooLarge)
	}
	match, ok := ftsQuery(query)
	if !ok {
		return nil, nil
	}
	if err := s.catchUpIndex(ctx); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	ms, err := s.queryMessages(ctx, s.rs.search, match, min(limit, MaxHistory))
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return ms, nil
}

// ftsQuery turns the user's query into an FTS5 query made only of quoted
// strings. The query is cut into words the way the unicode61 tokenizer cuts
// text (runs of letters, marks and digits; everything else separates), each
// word becomes "word"* (a prefix query), and the words are joined by
// spaces, which FTS5 reads as AND. Since no separator survives, no FTS5
// syntax (quotes, AND/OR/NOT/NEAR as operators, *, ^, :, parentheses) can
// reach the parser from the user; a literal "NEAR" is just a word.
func ftsQuery(query string) (string, bool) {
	words := strings.FieldsFunc(query, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.IsMark(r) && !unicode.Is(unicode.Co, r)
	})
	if len(words) == 0 {
		return "", false
	}
	words = words[:min(len(words), MaxSearchWords)]
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		b.WriteString(w)
		b.WriteString(`"*`)
	}
	return b.String(), true
}

func (s *Store) queryMessages(ctx context.Context, st *sql.Stmt, args ...any) ([]domain.Message, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ms []domain.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return ms, nil
}
