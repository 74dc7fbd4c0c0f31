// Package storage is the embedded, durable persistence of one profile: chat
// history and the outbox, trust pins, transfer state (one SQLite database,
// chatx.db, through the pure-Go modernc.org/sqlite driver) and the identity
// key file (identity.key, optionally sealed with a passphrase).
//
// Every write is durable when the call returns: writes from concurrent
// callers are funnelled to one writer goroutine that runs them in a single
// transaction and answers each caller after the commit (group commit), so
// many callers share one fsync. Reads run on a separate pool of read-only
// connections (WAL mode lets them proceed while the writer commits).
//
// The package maps domain types to its own row structs; it holds no business
// rules beyond the ones the ports promise (deduplication, state moves
// checked with the domain's own methods). It must not log message bodies,
// passphrases or key material, and it never imports another adapter.
package storage
