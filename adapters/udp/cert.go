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

// ErrPeerMismatch: a file endpoint presented the expected key under another
// name.
var ErrPeerMismatch = errors.New("peer presented another identity")

// peerFromState checks the connection state of a handshake (TLS 1.3, ALPN
// chatx-file/1, one self-signed Ed25519 certificate) and returns the
// identity the peer presented.
func peerFromState(cs tls.ConnectionState) (domain.Identity, error) {
	if cs.Version != tls.VersionTLS13 {
		return domain.Identity{}, fmt.Errorf("TLS version %#x, want 1.3", cs.Version)
	}
	if cs.NegotiatedProtocol != ALPN {
		return domain.Identity{}, fmt.Errorf("ALPN %q, want %q", cs.NegotiatedProtocol, ALPN)
	}
	raw := make([][]byte, len(cs.PeerCertificates))
	for i, c := range cs.PeerCertificates {
		raw[i] = c.Raw
	}
	return identityFromCert(raw)
}

// serverTLS is the configuration for incoming connections: a client
// certificate is required and checked in VerifyConnection, which runs on
// every handshake; session tickets are off so every connection presents its
// certificate afresh. Whether the identity is welcome is decided after the
// handshake by the PeerVerifier (it may need the directory and a context).
func serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		ClientAuth:             tls.RequireAnyClientCert,
		NextProtos:             []string{ALPN},
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := peerFromState(cs)
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
// against any CA (InsecureSkipVerify): VerifyConnection compares the
// server's key and name with want's instead, and records the refusal in
// *refused so the caller can return it as it is (quic-go wraps handshake
// errors): a *domain.KeyChangedError for another key, ErrPeerMismatch for
// the right key under another name.
func clientTLS(cert tls.Certificate, want domain.Identity, refused *certError) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             []string{ALPN},
		ServerName:             "chatx",
		InsecureSkipVerify:     true, // no CA: the identity is checked in VerifyConnection
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			got, err := peerFromState(cs)
			if err != nil {
				refused.set(err)
				return err
			}
			if !want.SameKey(got.PublicKey()) {
				err := &domain.KeyChangedError{Name: want.Name(), Old: want.Fingerprint(), New: got.Fingerprint()}
				refused.set(err)
				return err
			}
			if !got.Name().Equal(want.Name()) {
				err := fmt.Errorf("%w: expected %s, the certificate names %s", ErrPeerMismatch, want.Name(), got.Name())
				refused.set(err)
				return err
			}
			return nil
		},
	}
}
