package udp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func testLogger() *slog.Logger {
	if os.Getenv("CHATX_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newLocalIdentity(t testing.TB, name string) domain.LocalIdentity {
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

// newTransport listens on loopback and closes at the end of the test.
func newTransport(t testing.TB, me domain.LocalIdentity, v ports.PeerVerifier, cfg udp.Config) *udp.Transport {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	tr, cleanup, err := udp.NewTransport(me, v, nil, cfg, testLogger())
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	t.Cleanup(cleanup)
	return tr
}

func peerOf(id domain.Identity, tr ports.FileTransport) domain.Peer {
	return domain.Peer{Identity: id, Online: true, Endpoints: domain.Endpoints{File: tr.Endpoints()}}
}
