// Package peertls holds what the peer-to-peer TLS adapters (adapters/tcp for
// the chat link, adapters/udp for QUIC file transfer) share about ChatX's
// self-signed Ed25519 certificates: making the certificate that presents a
// domain.LocalIdentity, and reading and validating the domain.Identity a
// peer presented in a TLS 1.3 handshake.
//
// Peers trust keys, not certificates: there is no CA, and validity dates
// are not checked. Whether an identity is the expected one (key and name) or
// welcome at all is decided by each adapter; this package only says who the
// peer claims to be and that the certificate is well-formed.
//
// It imports only domain and the standard library. It must not dial,
// listen, log, or decide trust, and it never exposes private key material
// beyond handing it to crypto/tls.
package peertls
