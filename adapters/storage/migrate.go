package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// A migration moves the schema from version-1 to version. Migrations are
// append-only: a released one is never edited, a change is a new one.
type migration struct {
	version int
	name    string
	sql     string
}

// SchemaVersion is the schema version this code writes and understands.
const SchemaVersion = 7

// ErrSchemaTooNew means the database was written by a newer ChatX.
var ErrSchemaTooNew = errors.New("storage: database schema is newer than this program")

// migrations, in order. Times are stored as Unix seconds plus nanoseconds
// (two integers) so any time.Time survives exactly and sorts correctly;
// usernames as their normalised String() with their Key() beside them for
// matching; IDs as 16-byte blobs; states and directions as their String().
var migrations = []migration{
	{version: 1, name: "history, outbox, contacts, transfers", sql: `
CREATE TABLE messages (
	seq        INTEGER PRIMARY KEY,
	id         BLOB    NOT NULL CHECK (length(id) = 16),
	dir        TEXT    NOT NULL CHECK (dir IN ('out', 'in')),
	sender     TEXT    NOT NULL,
	sender_key TEXT    NOT NULL,
	recipient  TEXT    NOT NULL,
	peer_key   TEXT    NOT NULL,
	sent_sec   INTEGER NOT NULL,
	sent_nsec  INTEGER NOT NULL,
	body       TEXT    NOT NULL,
	state      TEXT    NOT NULL CHECK (state IN ('queued', 'sent', 'delivered', 'read', 'failed'))
);
CREATE UNIQUE INDEX messages_out_id ON messages (id) WHERE dir = 'out';
CREATE UNIQUE INDEX messages_in_id ON messages (sender_key, id) WHERE dir = 'in';
CREATE INDEX messages_history ON messages (peer_key, sent_sec, sent_nsec, seq);
CREATE INDEX messages_outbox ON messages (peer_key, sent_sec, sent_nsec, seq)
	WHERE dir = 'out' AND state IN ('queued', 'sent');

CREATE VIRTUAL TABLE messages_fts USING fts5(
	body, content = 'messages', content_rowid = 'seq',
	tokenize = 'unicode61 remove_diacritics 2'
);
-- The index is filled by the writer at the end of each transaction, in one
-- statement, from the rows past fts_progress.last_seq: a trigger per row
-- would make FTS5 flush a segment for every row. Messages are never
-- deleted or edited; a migration that changes that must keep the index.
CREATE TABLE fts_progress (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	last_seq INTEGER NOT NULL
);
INSERT INTO fts_progress (id, last_seq) VALUES (1, 0);

CREATE TABLE contacts (
	name_key    TEXT    PRIMARY KEY,
	name        TEXT    NOT NULL,
	public_key  BLOB    NOT NULL CHECK (length(public_key) = 32),
	verified    INTEGER NOT NULL CHECK (verified IN (0, 1)),
	pinned_sec  INTEGER NOT NULL,
	pinned_nsec INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE transfers (
	seq          INTEGER PRIMARY KEY,
	id           BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
	peer         TEXT    NOT NULL,
	dir          TEXT    NOT NULL CHECK (dir IN ('out', 'in')),
	state        TEXT    NOT NULL,
	done         INTEGER NOT NULL,
	reason       TEXT    NOT NULL,
	created_sec  INTEGER NOT NULL,
	created_nsec INTEGER NOT NULL,
	updated_sec  INTEGER NOT NULL,
	updated_nsec INTEGER NOT NULL,
	source       TEXT    NOT NULL,
	manifest     TEXT    NOT NULL -- JSON of manifestRow; written once, a transfer's manifest never changes
);
CREATE INDEX transfers_created ON transfers (created_sec, created_nsec, seq);
`},
	{version: 2, name: "transfer rate and run times", sql: `
ALTER TABLE transfers ADD COLUMN rate           REAL    NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN last_tick_sec  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN last_tick_nsec INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN last_done      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN run_start_sec  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN run_start_nsec INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN run_done       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN active_nsec    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN moved          INTEGER NOT NULL DEFAULT 0;
`},
	// Version 3: contacts and message requests. A name pinned before is
	// someone the user talked to: it becomes a contact, so upgrading loses
	// nothing. What strangers send waits in the quarantine (capped by the
	// application: ports.QuarantineStore).
	{version: 3, name: "contacts, nicknames, message requests", sql: `
ALTER TABLE contacts ADD COLUMN relation TEXT NOT NULL DEFAULT 'none' CHECK (relation IN ('none', 'contact', 'blocked'));
ALTER TABLE contacts ADD COLUMN nickname TEXT NOT NULL DEFAULT '';
UPDATE contacts SET relation = 'contact';

CREATE TABLE quarantine (
	seq           INTEGER PRIMARY KEY,
	sender_key    TEXT    NOT NULL,
	sender        TEXT    NOT NULL,
	public_key    BLOB    NOT NULL CHECK (length(public_key) = 32),
	kind          TEXT    NOT NULL CHECK (kind IN ('chat', 'offer')),
	item_id       BLOB    NOT NULL CHECK (length(item_id) = 16),
	sent_sec      INTEGER NOT NULL,
	sent_nsec     INTEGER NOT NULL,
	received_sec  INTEGER NOT NULL,
	received_nsec INTEGER NOT NULL,
	body          TEXT    NOT NULL, -- a chat's text, or an offer's manifest as JSON of manifestRow
	size          INTEGER NOT NULL  -- domain.HeldItem.Size, what counts against the caps
);
CREATE UNIQUE INDEX quarantine_item ON quarantine (sender_key, kind, item_id);
`},
	// Version 4 (issue 12): the 'stored' state (sealed in the peer's
	// mailbox), which the state CHECK of version 1 refuses. SQLite cannot
	// alter a CHECK, so the table is rebuilt with every row and its seq (the
	// full-text index refers to rows by seq and stays valid); stored
	// messages stay in the outbox (they are still written directly when the
	// peer comes online). And the mailbox private keys (mail_keys).
	{version: 4, name: "stored state, mailbox keys", sql: `
CREATE TABLE messages_v4 (
	seq        INTEGER PRIMARY KEY,
	id         BLOB    NOT NULL CHECK (length(id) = 16),
	dir        TEXT    NOT NULL CHECK (dir IN ('out', 'in')),
	sender     TEXT    NOT NULL,
	sender_key TEXT    NOT NULL,
	recipient  TEXT    NOT NULL,
	peer_key   TEXT    NOT NULL,
	sent_sec   INTEGER NOT NULL,
	sent_nsec  INTEGER NOT NULL,
	body       TEXT    NOT NULL,
	state      TEXT    NOT NULL CHECK (state IN ('queued', 'sent', 'stored', 'delivered', 'read', 'failed'))
);
INSERT INTO messages_v4 (seq, id, dir, sender, sender_key, recipient, peer_key, sent_sec, sent_nsec, body, state)
	SELECT seq, id, dir, sender, sender_key, recipient, peer_key, sent_sec, sent_nsec, body, state FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v4 RENAME TO messages;
CREATE UNIQUE INDEX messages_out_id ON messages (id) WHERE dir = 'out';
CREATE UNIQUE INDEX messages_in_id ON messages (sender_key, id) WHERE dir = 'in';
CREATE INDEX messages_history ON messages (peer_key, sent_sec, sent_nsec, seq);
CREATE INDEX messages_outbox ON messages (peer_key, sent_sec, sent_nsec, seq)
	WHERE dir = 'out' AND state IN ('queued', 'sent', 'stored');

-- Mailbox private keys (HPKE), kept until every mail that could be sealed
-- to them has expired (delete_sec), then deleted.
CREATE TABLE mail_keys (
	key_id       INTEGER PRIMARY KEY,
	suite        TEXT    NOT NULL,
	private      BLOB    NOT NULL,
	public       BLOB    NOT NULL,
	signature    BLOB    NOT NULL,
	created_sec  INTEGER NOT NULL,
	expires_sec  INTEGER NOT NULL,
	delete_sec   INTEGER NOT NULL
);
`},
	{version: 5, name: "groups: membership logs, messages, per-member deliveries", sql: groupsSchema},
	// Version 6 (issue 15): the file path (udp, tcp) of a transfer.
	{version: 6, name: "transfer file path", sql: `
ALTER TABLE transfers ADD COLUMN file_path TEXT NOT NULL DEFAULT '';
`},
	// Version 7 (issue 15): the search index without its per-row sizes
	// (columnsize=0). They serve only ranking (bm25), and Search orders by
	// time; writing them was a fortieth of the CPU of two clients messaging
	// at full speed. FTS5 cannot drop them in place, so the index is
	// rebuilt from every message, which the writer's next pass continues.
	{version: 7, name: "search index without row sizes", sql: `
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5(
	body, content = 'messages', content_rowid = 'seq',
	tokenize = 'unicode61 remove_diacritics 2', columnsize = 0
);
INSERT INTO messages_fts (rowid, body)
	SELECT seq, body FROM messages WHERE seq <= (SELECT last_seq FROM fts_progress WHERE id = 1) ORDER BY seq;
`},
}

// migrate brings the database on conn to the last of ms. Each migration runs
// in its own transaction together with the record that it ran, so a crash
// leaves the schema at a version boundary, and running again is a no-op.
func migrate(ctx context.Context, conn *sql.Conn, ms []migration) error {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	latest := 0
	for i, m := range ms {
		if m.version != i+1 {
			return fmt.Errorf("migrate: migration %d has version %d", i+1, m.version)
		}
		latest = m.version
	}
	for _, m := range ms {
		if err := applyMigration(ctx, conn, m, latest); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, m migration, latest int) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("migrate to %d: begin: %w", m.version, err)
	}
	defer func() {
		if err != nil {
			if _, rerr := conn.ExecContext(ctx, "ROLLBACK"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
			}
		}
	}()
	var current int
	if err := conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("migrate to %d: read version: %w", m.version, err)
	}
	if current > latest {
		return fmt.Errorf("%w: it is at version %d, this program knows up to %d", ErrSchemaTooNew, current, latest)
	}
	if current >= m.version {
		_, err := conn.ExecContext(ctx, "COMMIT")
		return err
	}
	if current != m.version-1 {
		return fmt.Errorf("migrate to %d: database is at version %d", m.version, current)
	}
	if _, err := conn.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migrate to %d (%s): %w", m.version, m.name, err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
		m.version, m.name, time.Now().Unix()); err != nil {
		return fmt.Errorf("migrate to %d: record: %w", m.version, err)
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return fmt.Errorf("migrate to %d: user_version: %w", m.version, err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("migrate to %d: commit: %w", m.version, err)
	}
	return nil
}
