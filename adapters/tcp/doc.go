// Package tcp carries the peer protocol (docs/peer-protocol.md) over TCP with
// mutual TLS 1.3: it implements ports.MessageLink.
//
// Each side presents a self-signed certificate of its Ed25519 identity key,
// and the link is used only once the peer's key is the one expected: the
// dialer compares it with the key of the domain.Peer it was asked to reach,
// the acceptor (and the dialer, second) asks the ports.PeerVerifier it was
// built with. There is one link per pair of peers, framed, heartbeated and
// bounded in every length and queue.
//
// The package must not store anything, decide what a message means, retry
// unacknowledged envelopes (the use-cases' outbox does) or log message
// bodies and key material. It imports no other adapter.
package tcp
