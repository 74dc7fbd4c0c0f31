package peertls

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

// ErrRefused wraps every refusal of a peer's certificate or handshake.
var ErrRefused = errors.New("peer certificate refused")

// MaxCertificateSize bounds the peer certificate accepted, in DER bytes.
// Ours are a few hundred bytes.
const MaxCertificateSize = 4 << 10

// Certificate makes the TLS certificate of our identity: its public key is
// the identity key, its CommonName the username, signed by the key itself.
// Validity dates are informative only: peers check the key and the name.
func Certificate(me domain.LocalIdentity) (tls.Certificate, error) {
	if me.IsZero() {
		return tls.Certificate{}, errors.New("certificate: no local identity")
	}
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

// Identity returns the identity in the one certificate a peer presented:
// at most MaxCertificateSize bytes, an Ed25519 key, a valid self-signature
// and a valid username in CommonName. During a TLS 1.3 handshake, TLS has
// already proved that the peer holds the private key. Errors wrap
// ErrRefused.
func Identity(certs []*x509.Certificate) (domain.Identity, error) {
	if len(certs) != 1 {
		return domain.Identity{}, fmt.Errorf("%w: %d certificates, want 1", ErrRefused, len(certs))
	}
	cert := certs[0]
	if cert == nil {
		return domain.Identity{}, fmt.Errorf("%w: no certificate", ErrRefused)
	}
	if len(cert.Raw) > MaxCertificateSize {
		return domain.Identity{}, fmt.Errorf("%w: %d bytes, at most %d", ErrRefused, len(cert.Raw), MaxCertificateSize)
	}
	key, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return domain.Identity{}, fmt.Errorf("%w: public key is %T, want Ed25519", ErrRefused, cert.PublicKey)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return domain.Identity{}, fmt.Errorf("%w: not self-signed by its key: %v", ErrRefused, err)
	}
	name, err := domain.ParseUsername(cert.Subject.CommonName)
	if err != nil {
		return domain.Identity{}, fmt.Errorf("%w: name: %w", ErrRefused, err)
	}
	id, err := domain.NewIdentity(name, key)
	if err != nil {
		return domain.Identity{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return id, nil
}

// PeerIdentity checks the state of a handshake — TLS 1.3, the application
// protocol alpn negotiated, one certificate as Identity wants it — and
// returns the identity the peer presented. Errors wrap ErrRefused.
func PeerIdentity(cs tls.ConnectionState, alpn string) (domain.Identity, error) {
	if cs.Version != tls.VersionTLS13 {
		return domain.Identity{}, fmt.Errorf("%w: TLS version %#x, want 1.3", ErrRefused, cs.Version)
	}
	if cs.NegotiatedProtocol != alpn {
		return domain.Identity{}, fmt.Errorf("%w: ALPN %q, want %q", ErrRefused, cs.NegotiatedProtocol, alpn)
	}
	return Identity(cs.PeerCertificates)
}
