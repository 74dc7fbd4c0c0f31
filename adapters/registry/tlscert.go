package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files of the generated certificate under the data directory.
const (
	generatedCert = "tls-cert.pem"
	generatedKey  = "tls-key.pem"
)

// Fingerprint is the SHA-256 of a certificate's DER bytes, in lower-case hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// loadOrCreateCert loads the configured certificate, or the generated one
// under dir, generating it (ECDSA P-256, 10 years) the first time.
func loadOrCreateCert(certFile TLSCertFile, keyFile TLSKeyFile, dir DataDir) (tls.Certificate, bool, error) {
	if (certFile == "") != (keyFile == "") {
		return tls.Certificate{}, false, errors.New("tls: give both --tls-cert and --tls-key, or neither")
	}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(string(certFile), string(keyFile))
		if err != nil {
			return tls.Certificate{}, false, fmt.Errorf("tls: load %s: %w", certFile, err)
		}
		return c, false, nil
	}
	if dir == "" {
		return tls.Certificate{}, false, errors.New("tls: no certificate given and no data directory to keep one")
	}
	cp, kp := filepath.Join(string(dir), generatedCert), filepath.Join(string(dir), generatedKey)
	if c, err := tls.LoadX509KeyPair(cp, kp); err == nil {
		return c, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, false, fmt.Errorf("tls: load generated certificate: %w", err)
	}
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("tls: %w", err)
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if err := writeFileSync(kp, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("tls: write key: %w", err)
	}
	if err := writeFileSync(cp, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("tls: write certificate: %w", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("tls: %w", err)
	}
	return c, true, nil
}

func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: serial: %w", err)
	}
	host, _ := os.Hostname()
	dns := []string{"localhost"}
	if host != "" && host != "localhost" {
		dns = append(dns, host)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "chatx registry"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: create certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// writeFileSync writes a new file atomically (temp file, fsync, rename).
func writeFileSync(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
