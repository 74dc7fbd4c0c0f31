package bench_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/files"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
)

// cluster is an in-process HTTPS registry on loopback and whole clients
// registered with it, each built by chatx.InitClient exactly as the binary
// builds them (TCP link, QUIC transport, SQLite profile, downloads on disk),
// everything under one folder.
type cluster struct {
	tb       testing.TB
	base     string
	logger   *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	cleanups []func() // run last first: the registry's is the first, so it
	// stops last and the clients can unregister on the way out
	url      registry.RegistryURL
	stopOnce sync.Once
}

// newCluster starts the registry under base.
func newCluster(tb testing.TB, base string) *cluster {
	tb.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("CHATX_BENCH_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &cluster{tb: tb, base: base, logger: logger, ctx: ctx, cancel: cancel}
	data := registry.DataDir(filepath.Join(base, "registry"))
	reg, cleanupReg, err := chatx.InitRegistry(chatx.RegistryConfig{
		Server: registry.ServerConfig{Listen: "127.0.0.1:0", Data: data},
		Data:   data,
		Relay:  relay.Config{Listen: "127.0.0.1:0"},
	}, logger)
	if err != nil {
		c.fail("registry: %v", err)
	}
	// Serve runs the service's reaper of expired sessions too.
	regCtx, stopReg := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = reg.Server.Serve(regCtx) }()
	c.cleanups = append(c.cleanups, func() { stopReg(); <-served; cleanupReg() })
	c.url = reg.Server.URL()
	return c
}

// benchStripes is every client's udp.Config.Stripes (--file-stripes):
// CHATX_BENCH_FILE_STRIPES, default 0 (automatic).
func benchStripes() int {
	n, _ := strconv.Atoi(os.Getenv("CHATX_BENCH_FILE_STRIPES"))
	return n
}

// start builds and runs one client with a fresh identity.
func (c *cluster) start(name string, opts app.Options) *app.Client {
	c.tb.Helper()
	return c.startLogged(name, opts, c.logger.With("client", name))
}

// startLogged is start with the client's own logger.
func (c *cluster) startLogged(name string, opts app.Options, logger *slog.Logger) *app.Client {
	c.tb.Helper()
	profile := filepath.Join(c.base, name)
	downloads := filepath.Join(c.base, name+"-downloads")
	if err := os.MkdirAll(downloads, 0o700); err != nil {
		c.fail("downloads: %v", err)
	}
	link := tcp.DefaultConfig()
	link.ListenAddr = "127.0.0.1:0"
	cfg := chatx.ClientConfig{
		Profile:   storage.ProfileDir(profile),
		Downloads: files.DownloadDir(downloads),
		Link:      link,
		Files:     udp.Config{ListenAddr: "127.0.0.1:0", Stripes: benchStripes()},
		Directory: registry.ClientConfig{URL: c.url, Profile: registry.ProfileDir(profile)},
		Options:   opts,
	}
	client, cleanup, err := chatx.InitClient(cfg, newIdentity(c.tb, name), logger)
	if err != nil {
		c.fail("client %s: %v", name, err)
	}
	c.cleanups = append(c.cleanups, cleanup)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := client.Run(c.ctx); err != nil {
			c.logger.Error("client stopped", "client", name, "err", err)
		}
	}()
	return client
}

// firstSend sends one message from → to, retrying until to is known and
// the link is up (dialled, TLS handshake and key pinning done).
func (c *cluster) firstSend(from *app.Client, to domain.Username) {
	c.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := from.Send(c.ctx, to, "hello")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.fail("first send: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// addContact makes name a contact of who, retrying until name is known
// to the registry (a stranger's messages, offers and groups wait as
// requests).
func (c *cluster) addContact(who *app.Client, name domain.Username) {
	c.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := who.AddContact(c.ctx, name)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.fail("%s adds %s: %v", who.Whoami().Name(), name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends every client, then the registry; it may be called again.
func (c *cluster) stop() {
	c.stopOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
		for i := len(c.cleanups) - 1; i >= 0; i-- {
			c.cleanups[i]()
		}
	})
}

func (c *cluster) fail(format string, args ...any) {
	c.tb.Helper()
	c.stop()
	c.tb.Fatalf(format, args...)
}

func newIdentity(tb testing.TB, name string) domain.LocalIdentity {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	me, err := domain.NewLocalIdentity(domain.MustUsername(name), priv)
	if err != nil {
		tb.Fatal(err)
	}
	return me
}
