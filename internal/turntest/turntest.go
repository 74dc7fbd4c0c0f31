// Package turntest starts a third-party TURN server, coturn (`turnserver`,
// Debian package coturn), on loopback for tests of the TURN client and of
// the credentials the registry hands out, and holds the small helpers the
// TURN tests of several packages share. Tests only: nothing in a
// production binary imports it.
package turntest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Coturn is a running turnserver.
type Coturn struct {
	// Addr is host:port of its UDP and TCP listeners (same port).
	Addr string
	// Realm is the realm it announces.
	Realm string
}

// StartCoturn runs turnserver on 127.0.0.1 with the TURN REST shared secret
// (use-auth-secret), relaying on 127.0.0.1, from a turnserver.conf with
// the lines docs/relay.md recommends, and stops it when t ends. It skips t
// when turnserver is not installed. coturn refuses loopback peers by
// default (no-loopback-peers); the test needs them, so it adds
// allow-loopback-peers and allowed-peer-ip for 127.0.0.0/8 — never do that
// on a real relay.
func StartCoturn(t testing.TB, secret string) Coturn {
	t.Helper()
	return startCoturn(t, secret, "max-bps=1250000")
}

// StartCoturnUnlimited is StartCoturn without the bandwidth cap, for
// benchmarks.
func StartCoturnUnlimited(t testing.TB, secret string) Coturn {
	t.Helper()
	return startCoturn(t, secret, "max-bps=0")
}

func startCoturn(t testing.TB, secret, maxBPS string) Coturn {
	t.Helper()
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		t.Skip("coturn not installed (turnserver not in PATH): skipping the third-party relay test; apt-get install coturn")
	}
	port := freePort(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "turn.log")
	const realm = "chatx"
	// The lines of docs/relay.md's turnserver.conf, on loopback, plus
	// what only a test needs.
	conf := strings.Join([]string{
		"listening-ip=127.0.0.1",
		"listening-port=" + strconv.Itoa(port),
		"relay-ip=127.0.0.1",
		"min-port=49152",
		"max-port=65535",
		"fingerprint",
		"use-auth-secret",
		"static-auth-secret=" + secret,
		"realm=" + realm,
		"user-quota=4",
		"total-quota=1024",
		maxBPS,
		"no-multicast-peers",
		"no-tls",
		"no-dtls",
		"no-cli",
		"no-software-attribute",
		// test only: peers on loopback
		"allow-loopback-peers",
		"allowed-peer-ip=127.0.0.0-127.255.255.255",
		"pidfile=" + filepath.Join(dir, "turn.pid"),
		"log-file=" + logFile,
		"simple-log",
		"no-stdout-log",
	}, "\n") + "\n"
	confFile := filepath.Join(dir, "turnserver.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", confFile}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start turnserver: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel() // kills this one process (by its PID)
		<-exited
		if t.Failed() {
			logs, _ := os.ReadFile(logFile)
			t.Logf("turnserver output:\n%s\nturnserver log:\n%s", out.String(), logs)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Ready when its TCP listener accepts (it opens UDP and TCP together).
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("turnserver exited early: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("turnserver not listening on %s after 10 s", addr)
		}
	}
	return Coturn{Addr: addr, Realm: realm}
}

// freePort finds a port free for both UDP and TCP on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port
		}
	}
	t.Fatal("no free port for UDP and TCP")
	return 0
}

// WaitFor polls cond (a condition, not a timer) every few milliseconds for
// up to 10 s and fails t if it never holds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SelfSigned is an Ed25519 certificate for the DNS name name, valid an hour
// either side of now, and a pool that trusts it.
func SelfSigned(t testing.TB, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, pool
}
