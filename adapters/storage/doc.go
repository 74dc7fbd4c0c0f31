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
// Two calls say more, for the message hot path (one durable write per
// message per side). SaveOutgoingStaged also tells its caller when the
// message is committed, before the fsync, so the sender can write it to
// the peer meanwhile. MarkStates records state marks (sent, delivered,
// read) in one statement per batch and returns once committed: it becomes
// durable with the next fsync (a batch of marks alone costs none). Both
// are safe because of what a loss would mean: a killed process loses
// nothing committed (the kernel holds the WAL); only a power cut before
// the next fsync can drop a mark, which makes the sender write the message
// again, and the receiver deduplicates it (ports.MessageMarks,
// ports.OutboxStaging). The search index is filled in batches — every
// 100 ms or 4,096 messages, and always before a Search — not at each
// commit.
//
// The package maps domain types to its own row structs; it holds no business
// rules beyond the ones the ports promise (deduplication, state moves
// checked with the domain's own methods). It must not log message bodies,
// passphrases or key material, and it never imports another adapter.
package storage
