package registry_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// testServer is a registry server on loopback with real TLS and a data dir.
type testServer struct {
	srv    *registry.Server
	svc    *app.Registry
	url    registry.RegistryURL
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	stop   func()
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("CHATX_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fastConfig raises rate limits so many loopback clients (one IP) fit.
func fastConfig(dir string, listen string) registry.ServerConfig {
	return registry.ServerConfig{
		Listen:        registry.ListenAddr(listen),
		Data:          registry.DataDir(dir),
		ChallengeRate: registry.Rate{PerSecond: 1e6, Burst: 1e6},
		RegisterRate:  registry.Rate{PerSecond: 1e6, Burst: 1e6},
	}
}

func startServer(t testing.TB, cfg registry.ServerConfig, opts app.RegistryOptions) *testServer {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	accounts, closeAccounts, err := registry.NewFileAccountStore(cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := app.NewRegistry(accounts, registry.NewPresenceStore(), memory.NewRealClock(), opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, cleanup, err := registry.NewServer(cfg, svc, testLogger(t))
	if err != nil {
		closeAccounts()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, svc: svc, url: srv.URL(), cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx) }()
	ts.stop = func() {
		ts.once.Do(func() {
			cancel()
			if err := <-ts.done; err != nil {
				t.Errorf("serve: %v", err)
			}
			cleanup()
			closeAccounts()
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

func newClient(t testing.TB, url registry.RegistryURL, profile string) *registry.Client {
	t.Helper()
	c, cleanup, err := registry.NewClient(registry.ClientConfig{
		URL:        url,
		Profile:    registry.ProfileDir(profile),
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: time.Second,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return c
}

func newLocal(t testing.TB, name string) domain.LocalIdentity {
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

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPresence reads ev until name shows with the wanted online state.
func waitPresence(t testing.TB, ev <-chan ports.DirectoryEvent, name string, online bool, timeout time.Duration) {
	t.Helper()
	want := domain.MustUsername(name)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-ev:
			if !ok {
				t.Fatalf("watch closed while waiting for %s online=%v", name, online)
			}
			if e.Kind == ports.PeerChanged && e.Peer.Name().Equal(want) && e.Peer.Online == online {
				return
			}
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s online=%v", timeout, name, online)
		}
	}
}

func isOnline(ctx context.Context, svc ports.RegistryService, name string) bool {
	p, err := svc.Lookup(ctx, domain.MustUsername(name))
	return err == nil && p.Online
}
