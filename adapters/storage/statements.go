package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/chatx/chatx/domain"
)

const messageColumns = "m.id, m.dir, m.sender, m.recipient, m.sent_sec, m.sent_nsec, m.body, m.state"

const insertMessageSQL = `INSERT INTO messages
	(id, dir, sender, sender_key, recipient, peer_key, sent_sec, sent_nsec, body, state)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// maxRowsPerInsert bounds the rows of one multi-row INSERT (8 parameters
// each, far below SQLite's 32,766).
const maxRowsPerInsert = 256

// multiInsert is the INSERT of n messages in one statement, incoming ones
// deduplicated (no RETURNING: which rows were new is read only when some
// were not, see newRowBatches). Direction and state are literals — every
// row of it is a new outgoing message (queued) or a received one
// (delivered), see rowState — so a row binds 8 parameters, not 10 (the
// driver copies each text into C memory and back).
func multiInsert(n int, incoming bool) string {
	dir, state := domain.Outgoing, rowState(false)
	if incoming {
		dir, state = domain.Incoming, rowState(true)
	}
	row := "(?, '" + dir.String() + "', ?, ?, ?, ?, ?, ?, ?, '" + state.String() + "')"
	var b strings.Builder
	b.WriteString(`INSERT INTO messages
	(id, dir, sender, sender_key, recipient, peer_key, sent_sec, sent_nsec, body, state)
	VALUES `)
	b.WriteString(row)
	for range n - 1 {
		b.WriteString(", ")
		b.WriteString(row)
	}
	if incoming {
		b.WriteString(" ON CONFLICT DO NOTHING")
	}
	return b.String()
}

// rowState is the state of the messages a multi-row insert stores: a
// new outgoing message is queued, a received one delivered (the domain's
// NewOutgoingMessage and NewIncomingMessage). A save in another state is
// written alone.
func rowState(incoming bool) domain.MessageState {
	if incoming {
		return domain.MessageDelivered
	}
	return domain.MessageQueued
}

// writeStmts are prepared on the writer's connection and used only by the
// writer goroutine.
type writeStmts struct {
	insertOutgoing *sql.Stmt
	insertIncoming *sql.Stmt
	selectOutgoing *sql.Stmt
	selectSeqs     *sql.Stmt // the rows of a range of seq
	selectContact  *sql.Stmt
	insertContact  *sql.Stmt
	replaceContact *sql.Stmt
	setVerified    *sql.Stmt
	upsertTransfer *sql.Stmt
	moveTo         map[domain.MessageState]*sql.Stmt // UPDATE … RETURNING, one per target state
	markTo         map[domain.MessageState]*sql.Stmt // the same for a JSON array of hex IDs (MarkStates)
	markAll        map[domain.MessageState]*sql.Stmt // markTo without RETURNING
	savepoint      *sql.Stmt
	release        *sql.Stmt
	rollbackTo     *sql.Stmt
	indexNew       *sql.Stmt
	indexProgress  *sql.Stmt
	all            []*sql.Stmt

	// Multi-row inserts (multiInsert), prepared when first needed: by
	// log2 of the rows, outgoing [0] and incoming [1].
	conn  *sql.Conn
	multi [2][]*sql.Stmt
}

// insertRows returns the statement inserting n messages (a power of two,
// at most maxRowsPerInsert), preparing it the first time. Writer
// goroutine only.
func (ws *writeStmts) insertRows(ctx context.Context, n int, incoming bool) (*sql.Stmt, error) {
	dir := 0
	if incoming {
		dir = 1
	}
	k := bits.Len(uint(n)) - 1
	if n < 1 || n > maxRowsPerInsert || 1<<k != n {
		return nil, fmt.Errorf("insert %d rows: not a power of two up to %d", n, maxRowsPerInsert)
	}
	for len(ws.multi[dir]) <= k {
		ws.multi[dir] = append(ws.multi[dir], nil)
	}
	if st := ws.multi[dir][k]; st != nil {
		return st, nil
	}
	st, err := ws.conn.PrepareContext(ctx, multiInsert(n, incoming))
	if err != nil {
		return nil, fmt.Errorf("prepare insert of %d messages: %w", n, err)
	}
	ws.multi[dir][k] = st
	ws.all = append(ws.all, st)
	return st, nil
}

func prepareWrites(ctx context.Context, conn *sql.Conn) (*writeStmts, error) {
	ws := &writeStmts{conn: conn}
	var err error
	prep := func(dst **sql.Stmt, query string) {
		if err != nil {
			return
		}
		var st *sql.Stmt
		st, err = conn.PrepareContext(ctx, query)
		if err != nil {
			err = fmt.Errorf("prepare %q: %w", query, err)
			return
		}
		*dst = st
		ws.all = append(ws.all, st)
	}
	prep(&ws.insertOutgoing, insertMessageSQL)
	prep(&ws.insertIncoming, insertMessageSQL+" ON CONFLICT DO NOTHING")
	prep(&ws.selectSeqs, "SELECT sender_key, id FROM messages WHERE seq > ? AND seq <= ?")
	prep(&ws.selectOutgoing, "SELECT "+messageColumns+" FROM messages m WHERE m.dir = 'out' AND m.id = ?")
	// For each target state, an UPDATE that matches only the states the
	// domain lets move there (CanMove), the target itself excluded (a no-op
	// needs no write).
	ws.moveTo = make(map[domain.MessageState]*sql.Stmt, len(messageStateNames))
	ws.markTo = make(map[domain.MessageState]*sql.Stmt, len(messageStateNames))
	ws.markAll = make(map[domain.MessageState]*sql.Stmt, len(messageStateNames))
	for next := range messageStateNames {
		var from []string
		for cur := range messageStateNames {
			if cur != next && cur.CanMove(next) {
				from = append(from, "'"+cur.String()+"'")
			}
		}
		slices.Sort(from)
		if len(from) == 0 {
			from = []string{"NULL"}
		}
		var st *sql.Stmt
		prep(&st, "UPDATE messages SET state = '"+next.String()+"' WHERE dir = 'out' AND id = ? AND state IN ("+
			strings.Join(from, ", ")+") RETURNING "+strings.ReplaceAll(messageColumns, "m.", ""))
		ws.moveTo[next] = st
		// One statement for a whole batch: the IDs come as a JSON array of
		// hex strings, each looked up through messages_out_id.
		var mark, markAll *sql.Stmt
		update := "UPDATE messages SET state = '" + next.String() + "' WHERE dir = 'out' AND id IN (SELECT unhex(value) FROM json_each(?)) AND state IN (" +
			strings.Join(from, ", ") + ")"
		prep(&mark, update+" RETURNING id")
		prep(&markAll, update)
		ws.markTo[next], ws.markAll[next] = mark, markAll
	}
	prep(&ws.savepoint, "SAVEPOINT marks")
	prep(&ws.release, "RELEASE marks")
	prep(&ws.rollbackTo, "ROLLBACK TO marks")
	prep(&ws.selectContact, "SELECT "+contactColumns+" FROM contacts WHERE name_key = ?")
	prep(&ws.insertContact, `INSERT INTO contacts (name_key, name, public_key, verified, pinned_sec, pinned_nsec)
		VALUES (?, ?, ?, 0, ?, ?)`)
	prep(&ws.replaceContact, `INSERT INTO contacts (name_key, name, public_key, verified, pinned_sec, pinned_nsec)
		VALUES (?, ?, ?, 0, ?, ?)
		ON CONFLICT (name_key) DO UPDATE SET name = excluded.name, public_key = excluded.public_key,
			verified = 0, pinned_sec = excluded.pinned_sec, pinned_nsec = excluded.pinned_nsec`)
	prep(&ws.setVerified, "UPDATE contacts SET verified = ? WHERE name_key = ?")
	prep(&ws.upsertTransfer, `INSERT INTO transfers
		(id, peer, dir, state, done, reason, created_sec, created_nsec, updated_sec, updated_nsec, source, manifest,
		 rate, last_tick_sec, last_tick_nsec, last_done, run_start_sec, run_start_nsec, run_done, active_nsec, moved, file_path)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET peer = excluded.peer, dir = excluded.dir, state = excluded.state,
			done = excluded.done, reason = excluded.reason, created_sec = excluded.created_sec,
			created_nsec = excluded.created_nsec, updated_sec = excluded.updated_sec,
			updated_nsec = excluded.updated_nsec, source = excluded.source,
			rate = excluded.rate, last_tick_sec = excluded.last_tick_sec, last_tick_nsec = excluded.last_tick_nsec,
			last_done = excluded.last_done, run_start_sec = excluded.run_start_sec,
			run_start_nsec = excluded.run_start_nsec, run_done = excluded.run_done,
			active_nsec = excluded.active_nsec, moved = excluded.moved, file_path = excluded.file_path`)
	prep(&ws.indexNew, `INSERT INTO messages_fts (rowid, body)
		SELECT seq, body FROM messages WHERE seq > (SELECT last_seq FROM fts_progress WHERE id = 1) ORDER BY seq`)
	prep(&ws.indexProgress, "UPDATE fts_progress SET last_seq = (SELECT COALESCE(MAX(seq), 0) FROM messages) WHERE id = 1")
	if err != nil {
		ws.close()
		return nil, err
	}
	return ws, nil
}

func (ws *writeStmts) close() error {
	var errs []error
	for _, st := range ws.all {
		if err := st.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// readStmts are prepared on the read-only pool.
type readStmts struct {
	outbox        *sql.Stmt
	outboxPeers   *sql.Stmt
	historyLatest *sql.Stmt
	historyBefore *sql.Stmt
	search        *sql.Stmt
	getContact    *sql.Stmt
	listContacts  *sql.Stmt
	getTransfer   *sql.Stmt
	listTransfers *sql.Stmt
	all           []*sql.Stmt
}

const transferColumns = `id, peer, dir, state, done, reason, created_sec, created_nsec,
	updated_sec, updated_nsec, source, manifest,
	rate, last_tick_sec, last_tick_nsec, last_done, run_start_sec, run_start_nsec, run_done, active_nsec, moved, file_path`

func prepareReads(ctx context.Context, db *sql.DB) (*readStmts, error) {
	rs := &readStmts{}
	var err error
	prep := func(dst **sql.Stmt, query string) {
		if err != nil {
			return
		}
		var st *sql.Stmt
		st, err = db.PrepareContext(ctx, query)
		if err != nil {
			err = fmt.Errorf("prepare %q: %w", query, err)
			return
		}
		*dst = st
		rs.all = append(rs.all, st)
	}
	prep(&rs.outbox, "SELECT "+messageColumns+` FROM messages m
		WHERE m.peer_key = ? AND m.dir = 'out' AND m.state IN ('queued', 'sent', 'stored')
		ORDER BY m.sent_sec, m.sent_nsec, m.seq LIMIT ?`)
	prep(&rs.outboxPeers, `SELECT MIN(recipient) FROM messages
		WHERE dir = 'out' AND state IN ('queued', 'sent', 'stored') GROUP BY peer_key ORDER BY peer_key`)
	prep(&rs.historyLatest, "SELECT "+messageColumns+` FROM messages m
		WHERE m.peer_key = ?
		ORDER BY m.sent_sec DESC, m.sent_nsec DESC, m.seq DESC LIMIT ?`)
	prep(&rs.historyBefore, "SELECT "+messageColumns+` FROM messages m
		WHERE m.peer_key = ? AND (m.sent_sec < ? OR (m.sent_sec = ? AND m.sent_nsec < ?))
		ORDER BY m.sent_sec DESC, m.sent_nsec DESC, m.seq DESC LIMIT ?`)
	prep(&rs.search, "SELECT "+messageColumns+` FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
		WHERE messages_fts MATCH ?
		ORDER BY m.sent_sec DESC, m.sent_nsec DESC, m.seq DESC LIMIT ?`)
	prep(&rs.getContact, "SELECT "+contactColumns+" FROM contacts WHERE name_key = ?")
	prep(&rs.listContacts, "SELECT "+contactColumns+" FROM contacts ORDER BY name_key")
	prep(&rs.getTransfer, "SELECT "+transferColumns+" FROM transfers WHERE id = ?")
	prep(&rs.listTransfers, "SELECT "+transferColumns+` FROM transfers
		ORDER BY created_sec DESC, created_nsec DESC, seq DESC LIMIT ?`)
	if err != nil {
		rs.close()
		return nil, err
	}
	return rs, nil
}

func (rs *readStmts) close() error {
	var errs []error
	for _, st := range rs.all {
		if err := st.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
