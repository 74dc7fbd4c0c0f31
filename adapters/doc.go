// Package adapters is the home of one folder per technology that reaches the
// world: tcp (peer messaging link), udp (QUIC file transfer), registry (the
// registry server and its client), relay (the TURN server embedded in
// the registry), storage (SQLite history, outbox, trust,
// transfers, key store, mailbox keys), seal (HPKE sealing of offline mail),
// files (local files and the downloads folder), tui
// (the terminal UI), jsonrpc (the scripting front) and memory (in-memory
// implementations of every driven port, for tests).
//
// Each adapter implements ports and exports one Wire ProviderSet. An adapter
// never imports another adapter; they meet only in the root wire.go.
package adapters
