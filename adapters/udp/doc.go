// Package udp moves the bytes of accepted file transfers between two
// authenticated identities over QUIC (github.com/quic-go/quic-go) on UDP,
// implementing ports.FileTransport.
//
// Each side listens on one UDP socket and dials from it. Connections use
// mutual TLS 1.3 with self-signed certificates of the Ed25519 identity keys
// (ALPN "chatx-file/1"): an outgoing connection is kept only when the
// server's key is the one expected for the peer, an incoming one only when
// the PeerVerifier accepts the client's identity. One connection is reused
// per peer; every file travels on its own bidirectional stream with a small
// binary header, a resume check (offset + SHA-256 of the prefix), the bytes,
// and a final status from the receiver. docs/file-protocol.md is the
// reference for the wire format.
//
// The package must not decide anything a user consents to: offers, accept,
// decline and cancel travel as envelopes on the message link, and where the
// bytes land (names, folders, hashes) belongs to the ports.IncomingFile the
// use-case hands over. It never buffers a whole file: memory per stream is
// one fixed buffer plus QUIC's bounded flow-control windows.
package udp
