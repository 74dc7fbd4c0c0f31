// Package memory holds in-memory implementations of every driven port of
// ChatX: the stores (messages, trust, transfers, keys, and the registry's
// accounts and presence), a settable clock, an event recorder, an in-memory
// file system for sent and received files, and an in-process network that
// carries the message link, the file transport and the directory between
// hosts in one process, with faults (drop, delay, partition, disconnect) that
// can be switched on and off while a test runs.
//
// These are the second implementation of each port, not throwaway fakes:
// each one keeps the promises its port documents (the contract suites in
// ports/contract run against them), is safe for concurrent use, and bounds
// every map a peer can grow (domain.ErrTooLarge beyond the cap). The
// registry server uses PresenceStore in production as its single-node
// presence table.
//
// The package must not touch the disk or real sockets, and it imports no
// other adapter. Nothing in it is durable: a restart loses everything.
package memory
