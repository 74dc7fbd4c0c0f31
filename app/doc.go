// Package app holds ChatX's use-cases, one per file, each reading like the
// sentence a user would say: Register, DiscoverPeers, SendMessage,
// ReceiveMessage, TransferFile, ReceiveFile, AcceptTransfer, DeclineTransfer,
// CancelTransfer, VerifyContact, SearchHistory; Client composes them into the
// driving port ports.Client, and Bus fans events out to user interfaces. The
// registry service (registry*.go) lives here too.
//
// The package imports only domain, ports and the standard library. It must
// not know sockets, files, databases, terminals or Wire: everything it needs
// from the world reaches it through a port, so adapters/memory can stand in
// for every adapter in tests.
package app
