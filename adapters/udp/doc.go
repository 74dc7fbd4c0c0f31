// Package udp is the QUIC transport (github.com/quic-go/quic-go) of a
// client: it moves the bytes of accepted file transfers
// (ports.FileTransport), carries the message link when no TCP connection can
// be made (ports.PeerStreams), and reaches peers behind NATs
// (ports.Diagnostics says how).
//
// Each client has one UDP socket. quic-go listens and dials on it; the
// datagrams that are not QUIC are taken off it for STUN (the reflexive
// address and NAT mapping, from the rendezvous' STUN server) and for the
// signed probes of hole punching. Connections use mutual TLS 1.3 with
// self-signed certificates of the Ed25519 identity keys (ALPN
// "chatx-file/1"): an outgoing connection is kept only when the server's key
// is the one expected for the peer, an incoming one only when the
// PeerVerifier accepts the client's identity. There is one connection per
// peer, whoever dialled it — directly, after punching, or through a TURN
// relay (turn.go, on a socket of its own) — and both sides open streams on
// it: a file stream (binary header, resume check, bytes, final status) or a
// LINK stream for the message link. A large file may be striped over
// extra stripe connections (ALPN "chatx-file-stripe/1", JOIN streams only,
// never the peer's connection; stripe.go), so several cores carry it.
// docs/file-protocol.md and
// docs/reachability.md are the references for the wire formats.
//
// The package must not decide anything a user consents to: offers, accept,
// decline and cancel travel as envelopes on the message link, and where the
// bytes land (names, folders, hashes) belongs to the ports.IncomingFile the
// use-case hands over. It never buffers a whole file: memory per stream is
// one fixed buffer plus QUIC's bounded flow-control windows.
package udp
