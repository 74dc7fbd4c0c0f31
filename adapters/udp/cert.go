package udp

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
)

// ALPN is the application protocol negotiated by TLS; its suffix is the
// protocol version (docs/file-protocol.md).
const ALPN = "chatx-file/1"

// maxCertSize bounds the peer certificate we parse.
const maxCertSize = 4 << 10

// selfSignedCert makes a TLS certificate whose key is the identity key and
// whose CommonName is the username. Validity dates are informative only:
// peers trust the key, not the certificate.
func selfSignedCert(me domain.LocalIdentity) (tls.Certificate, error) {
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
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}

// identityFromCert reads the peer's identity from the one certificate it
// presented: an Ed25519 key, a valid username in CommonName, and a valid
// self-signature. TLS has already checked that the peer holds the key.
func identityFromCert(rawCerts [][]byte) (domain.Identity, error) {
	if len(rawCerts) != 1 {
		return domain.Identity{}, fmt.Errorf("peer presented %d certificates, want 1", len(rawCerts))
	}
	if len(rawCerts[0]) > maxCertSize {
		return domain.Identity{}, fmt.Errorf("peer certificate of %d bytes (at most %d)", len(rawCerts[0]), maxCertSize)
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return domain.Identity{}, fmt.Errorf("parse peer certificate: %w", err)
	}
	key, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return domain.Identity{}, errors.New("peer certificate key is not Ed25519")
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return domain.Identity{}, fmt.Errorf("peer certificate is not self-signed by its key: %w", err)
	}
	name, err := domain.ParseUsername(cert.Subject.CommonName)
	if err != nil {
		return domain.Identity{}, fmt.Errorf("peer certificate name: %w", err)
	}
	return domain.NewIdentity(name, key)
}

// serverTLS is the configuration for incoming connections: a client
// certificate is required; who it belongs to is checked after the handshake
// by the PeerVerifier (it may need the directory and a context).
func serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{ALPN},
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			_, err := identityFromCert(rawCerts)
			return err
		},
	}
}

// certError keeps the reason a server certificate was refused; the TLS
// callback runs on quic-go's goroutine.
type certError struct {
	mu  sync.Mutex
	err error
}

func (c *certError) set(err error) { c.mu.Lock(); c.err = err; c.mu.Unlock() }

func (c *certError) get() error { c.mu.Lock(); defer c.mu.Unlock(); return c.err }

// clientTLS is the configuration for dialing want. The chain is not checked
// against any CA (InsecureSkipVerify): VerifyPeerCertificate compares the
// server's key with want's instead, and records a key change in *changed so
// the caller can return it as it is (quic-go wraps handshake errors).
func clientTLS(cert tls.Certificate, want domain.Identity, changed *certError) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		NextProtos:         []string{ALPN},
		ServerName:         "chatx",
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			got, err := identityFromCert(rawCerts)
			if err != nil {
				changed.set(err)
				return err
			}
			if !want.SameKey(got.PublicKey()) {
				err := &domain.KeyChangedError{Name: want.Name(), Old: want.Fingerprint(), New: got.Fingerprint()}
				changed.set(err)
				return err
			}
			return nil
		},
	}
}
