package chatx_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/files"
	"github.com/chatx/chatx/adapters/lan"
	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func localIdentity(t *testing.T, name string) domain.LocalIdentity {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	me, err := domain.NewLocalIdentity(domain.MustUsername(name), priv)
	if err != nil {
		t.Fatal(err)
	}
	return me
}

// TestMemoryInjectorChats builds two clients with the in-memory injector —
// the same use-cases as the real client, on adapters/memory — and checks a
// message goes from one to the other and is acknowledged.
func TestMemoryInjectorChats(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	reg, err := app.NewRegistry(memory.NewAccountStore(), memory.NewPresenceStore(), memory.NewRealClock(), app.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = reg.Run(ctx) }()
	network := memory.NewNetwork()

	start := func(name string) *app.Client {
		c, cleanup, err := chatx.InitMemoryClient(network, reg, localIdentity(t, name), memory.DirectoryConfig{}, app.Options{AcceptFromAnyone: true}) // strangers: no requests
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cleanup)
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: Run: %v", name, err)
			}
		})
		return c
	}
	alice, bob := start("alice"), start("bob")
	bobEvents := bob.Subscribe(ctx)
	aliceEvents := alice.Subscribe(ctx)

	// Wait until alice sees bob online, then send.
	for {
		peers, err := alice.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		online := false
		for _, p := range peers {
			online = online || (p.Peer.Name().Equal(bob.Whoami().Name()) && p.Peer.Online)
		}
		if online {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("bob never came online for alice")
		case <-aliceEvents:
		case <-time.After(50 * time.Millisecond):
		}
	}
	sent, err := alice.Send(ctx, bob.Whoami().Name(), "hello from the injector")
	if err != nil {
		t.Fatal(err)
	}
	for got := false; !got; {
		select {
		case <-ctx.Done():
			t.Fatal("bob never received the message")
		case ev := <-bobEvents:
			if m, ok := ev.(ports.MessageEvent); ok && m.Message.ID() == sent.ID() {
				got = m.Message.Body() == "hello from the injector"
			}
		}
	}
	for delivered := false; !delivered; {
		select {
		case <-ctx.Done():
			t.Fatal("alice never saw the delivery acknowledgement")
		case ev := <-aliceEvents:
			if s, ok := ev.(ports.MessageStateEvent); ok && s.ID == sent.ID() {
				delivered = s.State == domain.MessageDelivered
			}
		}
	}
}

// TestInitClientNeedsSomeDirectory: --registry none with --lan=false has
// nothing to find peers with and says so; --registry none alone starts.
func TestInitClientNeedsSomeDirectory(t *testing.T) {
	me := localIdentity(t, "alice")
	cfg := func(lanOn bool) chatx.ClientConfig {
		dir := t.TempDir()
		return chatx.ClientConfig{
			Profile:   storage.ProfileDir(dir),
			Downloads: files.DownloadDir(filepath.Join(dir, "downloads")),
			Link:      tcp.Config{ListenAddr: "127.0.0.1:0"},
			Files:     udp.Config{ListenAddr: "127.0.0.1:0"},
			Directory: registry.ClientConfig{URL: chatx.NoRegistry},
			LAN:       chatx.LANConfig{Enabled: lan.Enabled(lanOn), Config: lan.Config{Port: 30000 + int(time.Now().UnixNano()%20000)}},
		}
	}
	if _, _, err := chatx.InitClient(cfg(false), me, nil); err == nil {
		t.Fatal("a client with no registry and no LAN was built")
	}
	c, cleanup, err := chatx.InitClient(cfg(true), me, nil)
	if err != nil {
		t.Fatalf("LAN-only client: %v", err)
	}
	defer cleanup()
	if c.Whoami().Name() != me.Name() {
		t.Fatal("wrong identity")
	}
}
