package tui_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/tui"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
)

// realClient builds an app.Client for name on the in-memory network of reg,
// and a function that runs it (until the test ends).
func realClient(t *testing.T, reg *app.Registry, network *memory.Network, name string, local *memory.LocalFiles, downloads *memory.Downloads) (*app.Client, func()) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	me, err := domain.NewLocalIdentity(domain.MustUsername(name), priv)
	if err != nil {
		t.Fatal(err)
	}
	clock := memory.NewRealClock()
	bus := app.NewBus()
	trust := memory.NewTrustStore()
	var pv *app.PeerVerifier
	host, closeHost, err := memory.NewHost(network, me, memory.VerifierFunc(func(ctx context.Context, id domain.Identity) error {
		return pv.VerifyPeer(ctx, id)
	}))
	if err != nil {
		t.Fatal(err)
	}
	dir, closeDir, err := memory.NewDirectory(reg, host, memory.DirectoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if pv, err = app.NewPeerVerifier(trust, dir, clock, bus); err != nil {
		t.Fatal(err)
	}
	client, err := app.NewClient(me, dir, host.Link(), host.Files(), memory.NewMessageStore(), trust,
		memory.NewTransferStore(), local, downloads, clock, bus, app.MailPorts{},
		app.Options{Retry: app.Backoff{Min: 50 * time.Millisecond, Max: 400 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := false
	t.Cleanup(func() {
		cancel()
		if started {
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("%s: Run: %v", name, err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("%s: Run did not return", name)
			}
		}
		closeDir()
		closeHost()
	})
	return client, func() {
		started = true
		go func() { done <- client.Run(ctx) }()
	}
}

// TestRealSession drives the UI over a real app.Client on the in-memory
// network: a conversation and a file, both ways. Set CHATX_TUI_CAPTURE=FILE
// to write the final screen to FILE (the README's picture).
func TestRealSession(t *testing.T) {
	t.Parallel()
	reg, err := app.NewRegistry(memory.NewAccountStore(), memory.NewPresenceStore(), memory.NewRealClock(),
		app.RegistryOptions{SessionTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	regDone := make(chan struct{})
	go func() { defer close(regDone); _ = reg.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-regDone })
	network := memory.NewNetwork()

	photo := bytes.Repeat([]byte("chatx "), 200_000)
	bobFiles := memory.NewLocalFiles()
	bobFiles.Put("/home/bob/holiday.jpg", photo)
	aliceDownloads := memory.NewDownloads()
	alice, runAlice := realClient(t, reg, network, "alice", memory.NewLocalFiles(), aliceDownloads)
	bob, runBob := realClient(t, reg, network, "bob", bobFiles, memory.NewDownloads())
	runBob()

	screen := tcell.NewSimulationScreen("UTF-8")
	ui, cleanup, err := tui.New(alice, screen, tui.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	screen.SetSize(100, 26)
	uiCtx, uiCancel := context.WithCancel(context.Background())
	uiDone := make(chan error, 1)
	go func() { uiDone <- ui.Run(uiCtx) }()
	t.Cleanup(func() {
		uiCancel()
		if err := <-uiDone; err != nil {
			t.Errorf("UI Run: %v", err)
		}
	})
	s := &session{t: t, ui: ui, screen: screen}
	runAlice() // after the UI subscribed, as cmd/chatx does

	s.waitText("● bob", "registry: connected", "alice "+alice.Whoami().Fingerprint().Short())
	s.key(tcell.KeyCtrlN)
	s.waitText("bob online")
	s.typeText("hi bob, the photos from Sunday?")
	s.key(tcell.KeyEnter)
	s.waitText("me: hi bob, the photos from Sunday? ✓✓")

	if _, err := bob.Send(t.Context(), domain.MustUsername("alice"), "sure, sending the best one"); err != nil {
		t.Fatal(err)
	}
	s.waitText("bob: sure, sending the best one")

	if _, err := bob.SendFile(t.Context(), domain.MustUsername("alice"), "/home/bob/holiday.jpg"); err != nil {
		t.Fatal(err)
	}
	s.waitText("bob offers you:", "holiday.jpg", "1.1 MiB")
	s.typeText("a")
	s.waitText("holiday.jpg 1.1 MiB ✓ completed")
	got, ok := aliceDownloads.File("holiday.jpg")
	if !ok || !bytes.Equal(got, photo) {
		t.Fatalf("downloaded %d bytes (found %v), want the %d bytes sent", len(got), ok, len(photo))
	}

	s.typeText("thanks!")
	s.key(tcell.KeyEnter)
	screen2 := s.waitText("me: thanks! ✓✓")
	if path := os.Getenv("CHATX_TUI_CAPTURE"); path != "" {
		if err := os.WriteFile(path, []byte(screen2), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
