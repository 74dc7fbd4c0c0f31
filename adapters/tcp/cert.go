package tcp

import (
	"crypto/tls"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/peertls"
)

// selfSignedCertificate makes the TLS certificate of our identity: its public
// key is the identity key, its CommonName the username. Peers check only the
// key and the name, never the dates or an issuer.
func selfSignedCertificate(me domain.LocalIdentity) (tls.Certificate, error) {
	return peertls.Certificate(me)
}

// peerIdentity checks the connection state of a finished handshake (TLS 1.3,
// ALPN chatx/1, one self-signed Ed25519 certificate) and returns the identity
// the peer presented. TLS 1.3 has already proved that the peer holds the
// private key of the certificate's public key.
func peerIdentity(cs tls.ConnectionState) (domain.Identity, error) {
	return peertls.PeerIdentity(cs, ALPN)
}

// tlsConfig is the TLS configuration of both roles. Chain verification is
// off because there is no CA: verify (set per connection) does the check.
func tlsConfig(cert tls.Certificate, verify func(tls.ConnectionState) error) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             []string{ALPN},
		ClientAuth:             tls.RequireAnyClientCert,
		InsecureSkipVerify:     true, // no CA: the identity key is checked in VerifyConnection
		VerifyConnection:       verify,
		SessionTicketsDisabled: true,
	}
}
