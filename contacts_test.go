package chatx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/files"
	"github.com/chatx/chatx/adapters/lan"
	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// These tests run the contacts rules over real sockets and a real profile:
// a TLS registry, the TCP link, the QUIC file transport and SQLite.

// startRealRegistry runs a registry on loopback until the test ends.
func startRealRegistry(t *testing.T) registry.RegistryURL {
	t.Helper()
	data := registry.DataDir(t.TempDir())
	reg, cleanup, err := chatx.InitRegistry(chatx.RegistryConfig{
		Server: registry.ServerConfig{Listen: "127.0.0.1:0", Data: data, NoSTUN: true},
		Data:   data,
		Relay:  relay.Config{Disabled: true},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = reg.Server.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done; cleanup() })
	return reg.Server.URL()
}

// realClient is a whole client on a profile directory.
type realClient struct {
	client  *app.Client
	profile string
	events  *memory.EventRecorder
}

func startRealClient(t *testing.T, name string, url registry.RegistryURL, opts app.Options) *realClient {
	t.Helper()
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile")
	c, cleanup, err := chatx.InitClient(chatx.ClientConfig{
		Profile:   storage.ProfileDir(profile),
		Downloads: files.DownloadDir(filepath.Join(dir, "downloads")),
		Link:      tcp.Config{ListenAddr: "127.0.0.1:0"},
		Files:     udp.Config{ListenAddr: "127.0.0.1:0"},
		Directory: registry.ClientConfig{URL: url, Profile: registry.ProfileDir(profile)},
		LAN:       chatx.LANConfig{Enabled: lan.Enabled(false)},
		Options:   opts,
	}, localIdentity(t, name), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rec := memory.NewEventRecorder()
	events := c.Subscribe(ctx)
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for e := range events {
			rec.Publish(e)
		}
	}()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run: %v", name, err)
		}
		<-forwarded
		cleanup()
	})
	if _, err := memory.WaitForEvent(rec, 30*time.Second, func(ports.RegisteredEvent) bool { return true }); err != nil {
		t.Fatalf("%s did not register: %v", name, err)
	}
	return &realClient{client: c, profile: profile, events: rec}
}

// dirSize is the bytes of every file under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hostile is a registered peer built from the project's adapters that
// writes envelopes as fast as its link takes them, never waiting for an
// answer: what a stranger trying to fill a disk would run.
type hostile struct {
	me                 domain.LocalIdentity
	link               *tcp.Link
	dir                *registry.Client
	refused, delivered atomic.Int64
}

func (h *hostile) HandleEnvelope(_ context.Context, _ domain.Identity, env ports.Envelope) error {
	switch env.Kind {
	case ports.KindRefused:
		h.refused.Add(1)
	case ports.KindDelivered:
		h.delivered.Add(1)
	}
	return nil
}

// send writes env, dialling again when the link dropped (as any sender
// that wants to get through would).
func (h *hostile) send(ctx context.Context, to domain.Peer, env ports.Envelope) error {
	var err error
	for range 50 {
		if err = h.link.Send(ctx, to, env); err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

func startHostile(t *testing.T, ctx context.Context, name string, url registry.RegistryURL) *hostile {
	t.Helper()
	h := &hostile{me: localIdentity(t, name)}
	dir, closeDir, err := registry.NewClient(registry.ClientConfig{URL: url, Profile: registry.ProfileDir(t.TempDir())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeDir)
	accept := memory.VerifierFunc(func(context.Context, domain.Identity) error { return nil })
	link, closeLink, err := tcp.NewLink(h.me, accept, nil, tcp.Config{ListenAddr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeLink)
	served := make(chan struct{})
	sctx, stop := context.WithCancel(ctx)
	go func() { defer close(served); _ = link.Serve(sctx, h) }()
	t.Cleanup(func() { stop(); <-served })
	if err := dir.Register(ctx, h.me, domain.Endpoints{Link: link.Endpoints()}); err != nil {
		t.Fatal(err)
	}
	h.link, h.dir = link, dir
	return h
}

func TestStrangersFloodLeavesTheProfileWithinTheCaps(t *testing.T) {
	if testing.Short() {
		t.Skip("sends hundreds of megabytes over loopback")
	}
	const (
		strangers = 2
		messages  = 1000     // per stranger
		body      = 60 << 10 // bytes per message
		offers    = 100      // per stranger
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	url := startRealRegistry(t)
	alice := startRealClient(t, "alice", url, app.Options{})
	before := dirSize(t, alice.profile)

	text := strings.Repeat("x", body-16)
	var wg sync.WaitGroup
	var hs []*hostile
	for i := range strangers {
		h := startHostile(t, ctx, fmt.Sprintf("eve%d", i), url)
		hs = append(hs, h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			target, err := h.dir.Lookup(ctx, domain.MustUsername("alice"))
			if err != nil {
				t.Error(err)
				return
			}
			for j := range messages {
				env := ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), SentAt: time.Now(), Body: fmt.Sprintf("%08d", j) + text}
				if err := h.send(ctx, target, env); err != nil {
					t.Errorf("%s: chat %d: %v", h.me.Name(), j, err)
					return
				}
				if j%(messages/offers) == 0 {
					var fs []domain.FileEntry
					for k := range 200 {
						fs = append(fs, domain.FileEntry{Path: fmt.Sprintf("dir/%0100d.bin", k), Size: 1 << 40})
					}
					offer := ports.Envelope{Kind: ports.KindOffer, TransferID: domain.NewTransferID(), Manifest: domain.Manifest{Name: "dir", Files: fs}}
					if err := h.send(ctx, target, offer); err != nil {
						t.Errorf("%s: offer: %v", h.me.Name(), err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	// Every chat gets an answer (held and acknowledged, or refused), but
	// the acknowledgement queue may drop some under the flood: alice is
	// done when the answers stop coming (none for two seconds).
	answers := func() int64 {
		var n int64
		for _, h := range hs {
			n += h.refused.Load() + h.delivered.Load()
		}
		return n
	}
	last, since := int64(-1), time.Now()
	waitFor(t, ctx, "alice's answers to stop", func() bool {
		if n := answers(); n != last {
			last, since = n, time.Now()
		}
		return last > 0 && time.Since(since) > 2*time.Second
	})
	reqs, err := alice.client.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	limits := domain.DefaultQuarantineLimits
	var held int64
	for _, r := range reqs {
		if r.Request.Items > limits.PerPeerItems || r.Request.Bytes > limits.PerPeerBytes {
			t.Errorf("%s holds %d items, %d bytes: over the per-stranger caps", r.Request.From.Name(), r.Request.Items, r.Request.Bytes)
		}
		held += r.Request.Bytes
	}
	if len(reqs) != strangers {
		t.Errorf("%d requests, want %d", len(reqs), strangers)
	}
	if ts, _ := alice.client.Transfers(ctx); len(ts) != 0 {
		t.Errorf("strangers' offers became %d transfers", len(ts))
	}
	after := dirSize(t, alice.profile)
	sent := int64(strangers * messages * body)
	// The store's own overhead (pages, the write-ahead log, the index)
	// gets 4 MiB of room; the held bytes are within the caps.
	growth := after - before
	t.Logf("flood of %d MiB (%d chats, %d offers) from %d strangers: profile %d KiB → %d KiB (+%d KiB), %d KiB held; answers: %d refused, %d acknowledged",
		sent>>20, strangers*messages, strangers*offers, strangers, before>>10, after>>10, growth>>10, held>>10,
		hs[0].refused.Load()+hs[1].refused.Load(), hs[0].delivered.Load()+hs[1].delivered.Load())
	if max := held + 4<<20; growth > max {
		t.Fatalf("the profile grew by %d bytes under the flood, more than the %d held plus 4 MiB", growth, held)
	}
	if held > int64(strangers)*limits.PerPeerBytes {
		t.Fatalf("%d bytes held for %d strangers", held, strangers)
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestBlockedKeyIsRefusedAtTheHandshake builds the real link and file
// transport of alice with the client's PeerVerifier over her profile's
// trust store: once eve is blocked, neither a TCP link nor a QUIC
// connection from her gets past the handshake; unblocked, both do.
func TestBlockedKeyIsRefusedAtTheHandshake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice, eve := localIdentity(t, "alice"), localIdentity(t, "eve")
	store, closeStore, err := storage.Open(storage.ProfileDir(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	trust := storage.NewContacts(store)
	if err := trust.Pin(ctx, eve.Identity, time.Now()); err != nil {
		t.Fatal(err)
	}
	reg, err := app.NewRegistry(memory.NewAccountStore(), memory.NewPresenceStore(), memory.NewRealClock(), app.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir, closeDir, err := memory.NewDirectory(reg, nil, memory.DirectoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDir()
	pv, err := app.NewPeerVerifier(trust, dir, memory.NewRealClock(), memory.NewEventRecorder())
	if err != nil {
		t.Fatal(err)
	}
	accept := memory.VerifierFunc(func(context.Context, domain.Identity) error { return nil })

	// TCP: alice's link with the verifier; eve dials.
	aliceLink, closeA, err := tcp.NewLink(alice, pv, nil, tcp.Config{ListenAddr: "127.0.0.1:0", DialTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeA()
	got := make(chan ports.Envelope, 16)
	go func() {
		_ = aliceLink.Serve(ctx, handlerFunc(func(_ context.Context, _ domain.Identity, env ports.Envelope) error {
			got <- env
			return nil
		}))
	}()
	eveLink, closeE, err := tcp.NewLink(eve, accept, nil, tcp.Config{ListenAddr: "127.0.0.1:0", DialTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeE()
	go func() {
		_ = eveLink.Serve(ctx, handlerFunc(func(context.Context, domain.Identity, ports.Envelope) error { return nil }))
	}()
	alicePeer := domain.Peer{Identity: alice.Identity, Online: true, Endpoints: domain.Endpoints{Link: aliceLink.Endpoints()}}

	// QUIC: alice's file transport with the verifier; eve sends a file.
	aliceFiles, closeAF, err := udp.NewTransport(alice, pv, nil, udp.Config{ListenAddr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAF()
	incoming := make(chan domain.Identity, 16)
	go func() {
		_ = aliceFiles.Serve(ctx, receiverFunc(func(_ context.Context, from domain.Identity) error {
			incoming <- from
			return errors.New("not expecting files in this test")
		}))
	}()
	eveFiles, closeEF, err := udp.NewTransport(eve, accept, nil, udp.Config{ListenAddr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeEF()
	aliceFilePeer := domain.Peer{Identity: alice.Identity, Online: true, Endpoints: domain.Endpoints{File: aliceFiles.Endpoints()}}

	tryBoth := func() (linkErr error, reachedFiles bool) {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		linkErr = eveLink.Send(sctx, alicePeer, ports.Envelope{Kind: ports.KindTyping})
		_ = eveFiles.Send(sctx, aliceFilePeer, domain.NewTransferID(), 0, memorySource("x"), nil)
		select {
		case <-incoming:
			return linkErr, true
		default:
			return linkErr, false
		}
	}

	if err := trust.SetRelation(ctx, eve.Name(), domain.RelationBlocked); err != nil {
		t.Fatal(err)
	}
	if err := pv.VerifyPeer(ctx, eve.Identity); !errors.Is(err, domain.ErrBlocked) {
		t.Fatalf("VerifyPeer: %v, want ErrBlocked", err)
	}
	linkErr, reached := tryBoth()
	if linkErr == nil {
		t.Fatal("a blocked peer's TCP link was accepted")
	}
	if reached {
		t.Fatal("a blocked peer's QUIC connection reached the file receiver")
	}
	select {
	case env := <-got:
		t.Fatalf("a blocked peer's envelope (kind %d) arrived", env.Kind)
	default:
	}

	if err := trust.SetRelation(ctx, eve.Name(), domain.RelationNone); err != nil {
		t.Fatal(err)
	}
	linkErr, reached = tryBoth()
	if linkErr != nil {
		t.Fatalf("unblocked, the TCP link still fails: %v", linkErr)
	}
	if !reached {
		t.Fatal("unblocked, the QUIC connection still does not reach the file receiver")
	}
	select {
	case env := <-got:
		if env.Kind != ports.KindTyping {
			t.Fatalf("got kind %d", env.Kind)
		}
	case <-ctx.Done():
		t.Fatal("unblocked, eve's envelope never arrived")
	}
}

type handlerFunc func(ctx context.Context, from domain.Identity, env ports.Envelope) error

func (f handlerFunc) HandleEnvelope(ctx context.Context, from domain.Identity, env ports.Envelope) error {
	return f(ctx, from, env)
}

type receiverFunc func(ctx context.Context, from domain.Identity) error

func (f receiverFunc) Incoming(ctx context.Context, from domain.Identity, _ domain.TransferID, _ int, _ domain.FilePath, _ domain.FileHashAlg) (ports.IncomingFile, error) {
	return nil, f(ctx, from)
}

type memorySource string

func (m memorySource) Size() int64 { return int64(len(m)) }
func (m memorySource) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (m memorySource) Close() error { return nil }
