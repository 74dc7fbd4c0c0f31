package peertls_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/peertls"
)

func localIdentity(t *testing.T, name string) domain.LocalIdentity {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := domain.NewLocalIdentity(domain.MustUsername(name), priv)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// makeCert signs a certificate for pub named cn with signer (self-signed
// when signer holds pub's private key), with extra bytes in an extension.
func makeCert(t *testing.T, cn string, pub, signer any, extra int) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	if extra > 0 {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: []int{1, 3, 6, 1, 4, 1, 99999, 1}, Value: make([]byte, extra)}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestCertificatePresentsTheIdentity(t *testing.T) {
	me := localIdentity(t, "alice")
	cert, err := peertls.Certificate(me)
	if err != nil {
		t.Fatal(err)
	}
	got, err := peertls.PeerIdentity(tls.ConnectionState{
		Version: tls.VersionTLS13, NegotiatedProtocol: "x/1", PeerCertificates: []*x509.Certificate{cert.Leaf},
	}, "x/1")
	if err != nil {
		t.Fatalf("PeerIdentity of our own certificate: %v", err)
	}
	if !got.SameKey(me.PublicKey()) || !got.Name().Equal(me.Name()) {
		t.Fatalf("got %s %s, want %s %s", got.Name(), got.Fingerprint(), me.Name(), me.Identity.Fingerprint())
	}
	if _, err := peertls.Certificate(domain.LocalIdentity{}); err == nil {
		t.Fatal("Certificate of the zero identity succeeded")
	}
}

func TestPeerIdentityRefuses(t *testing.T) {
	me := localIdentity(t, "alice")
	own, err := peertls.Certificate(me)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv := me.PublicKey(), me.PrivateKey()
	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		version uint16
		alpn    string
		certs   []*x509.Certificate
	}{
		{"TLS 1.2", tls.VersionTLS12, "x/1", []*x509.Certificate{own.Leaf}},
		{"other ALPN", tls.VersionTLS13, "y/1", []*x509.Certificate{own.Leaf}},
		{"no certificate", tls.VersionTLS13, "x/1", nil},
		{"two certificates", tls.VersionTLS13, "x/1", []*x509.Certificate{own.Leaf, own.Leaf}},
		{"ECDSA key", tls.VersionTLS13, "x/1", []*x509.Certificate{makeCert(t, "alice", &ec.PublicKey, ec, 0)}},
		{"signed by another key", tls.VersionTLS13, "x/1", []*x509.Certificate{makeCert(t, "alice", pub, otherPriv, 0)}},
		{"invalid username", tls.VersionTLS13, "x/1", []*x509.Certificate{makeCert(t, "Alice Smith!", pub, priv, 0)}},
		{"oversized", tls.VersionTLS13, "x/1", []*x509.Certificate{makeCert(t, "alice", pub, priv, peertls.MaxCertificateSize)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := peertls.PeerIdentity(tls.ConnectionState{Version: tc.version, NegotiatedProtocol: tc.alpn, PeerCertificates: tc.certs}, "x/1")
			if !errors.Is(err, peertls.ErrRefused) {
				t.Fatalf("PeerIdentity = %v, want ErrRefused", err)
			}
		})
	}
	// The self-made certificate in the table's shape is accepted, so the
	// refusals above are for the reason each names.
	if _, err := peertls.Identity([]*x509.Certificate{makeCert(t, "alice", pub, priv, 0)}); err != nil {
		t.Fatalf("a well-formed self-signed certificate: %v", err)
	}
}
