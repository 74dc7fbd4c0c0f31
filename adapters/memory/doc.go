// Package memory holds in-memory implementations of every driven port of
// ChatX, so that a registry and several clients run in one test process.
//
// Stores (each safe for concurrent use, each map a peer can grow capped,
// domain.ErrTooLarge beyond the cap):
//   - MessageStore (ports.MessageStore), TrustStore, TransferStore, KeyStore;
//   - AccountStore and PresenceStore, the registry's stores. The registry
//     server uses PresenceStore in production as its single-node presence
//     table (O(1) by Username.Key).
//
// Time and events: Clock (ports.Clock; NewClock frozen and settable,
// NewRealClock following the system clock) and EventRecorder
// (ports.EventSink that tests wait on, WaitForEvent).
//
// Files: LocalFiles (ports.LocalFiles over files a test Puts) and Downloads
// (ports.Downloads with part files, "name (1).ext" commits and a settable
// free space).
//
// Network: a Network joins Hosts (NewHost: an identity and its
// PeerVerifier, at the address "mem:<peer id>"). Host.Link is a
// ports.MessageLink, Host.Files a ports.FileTransport; both authenticate
// both ways (the dialled host must hold the expected key, and its verifier
// must accept the dialler). Faults can be switched on and off at any time,
// for one host or between two: Drop (envelopes lost silently after Send
// returned nil, file streams broken), Delay, Partition (ErrPeerOffline) and
// Disconnect (links broken, ErrDisconnected until healed). A Directory
// (ports.Directory) signs a Host in at a ports.RegistryService in the same
// process (app.Registry), keeps the session alive and streams presence; its
// host's Disconnect cuts it from the registry too.
//
// These are the second implementation of each port, not throwaway fakes:
// each keeps the promises its port documents (the suites in ports/contract
// run against them). The package must not touch the disk or real sockets,
// and imports no other adapter. Nothing in it is durable.
package memory
