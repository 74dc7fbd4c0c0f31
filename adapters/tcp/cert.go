package tcp

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/chatx/chatx/domain"
)

// errPeerCertificate wraps every refusal of a peer's certificate.
var errPeerCertificate = errors.New("peer certificate refused")

// selfSignedCertificate makes the TLS certificate of our identity: its public
// key is the identity key, its CommonName the username. Peers check only the
// key and the name, never the dates or an issuer.
func selfSignedCertificate(me domain.LocalIdentity) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: me.Name().String()},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	priv := me.PrivateKey()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse own certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, nil
}

// peerIdentity checks the connection state of a finished handshake (TLS 1.3,
// ALPN chatx/1, one self-signed Ed25519 certificate) and returns the identity
// the peer presented. TLS 1.3 has already proved that the peer holds the
// private key of the certificate's public key.
func peerIdentity(cs tls.ConnectionState) (domain.Identity, error) {
	if cs.Version != tls.VersionTLS13 {
		return domain.Identity{}, fmt.Errorf("%w: TLS version %#x, want 1.3", errPeerCertificate, cs.Version)
	}
	if cs.NegotiatedProtocol != ALPN {
		return domain.Identity{}, fmt.Errorf("%w: ALPN %q, want %q", errPeerCertificate, cs.NegotiatedProtocol, ALPN)
	}
	if len(cs.PeerCertificates) != 1 {
		return domain.Identity{}, fmt.Errorf("%w: %d certificates, want 1", errPeerCertificate, len(cs.PeerCertificates))
	}
	cert := cs.PeerCertificates[0]
	key, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return domain.Identity{}, fmt.Errorf("%w: public key is %T, want Ed25519", errPeerCertificate, cert.PublicKey)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return domain.Identity{}, fmt.Errorf("%w: not self-signed: %v", errPeerCertificate, err)
	}
	name, err := domain.ParseUsername(cert.Subject.CommonName)
	if err != nil {
		return domain.Identity{}, fmt.Errorf("%w: name: %w", errPeerCertificate, err)
	}
	id, err := domain.NewIdentity(name, key)
	if err != nil {
		return domain.Identity{}, fmt.Errorf("%w: %w", errPeerCertificate, err)
	}
	return id, nil
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
