package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/seal"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// These tests run a registry and several clients in one process on the
// in-memory network: the product working end to end, without sockets.

const e2eTimeout = 30 * time.Second

// cluster is a registry on an in-memory network.
type cluster struct {
	t   *testing.T
	net *memory.Network
	reg *app.Registry
	// mailbox, when set (withMailbox), is the registry's mailbox: clients
	// then deliver offline through it.
	mailbox *app.RegistryMailbox
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	if os.Getenv("CHATX_DEBUG") != "" {
		slog.SetLogLoggerLevel(slog.LevelDebug)
	}
	return &cluster{t: t, net: memory.NewNetwork(), reg: runRegistry(t)}
}

// runRegistry runs an in-process registry service until the test ends.
func runRegistry(t *testing.T) *app.Registry {
	t.Helper()
	reg, err := app.NewRegistry(memory.NewAccountStore(), memory.NewPresenceStore(), memory.NewRealClock(),
		app.RegistryOptions{SessionTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = reg.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return reg
}

// node is one user's profile (its stores outlive restarts) and, while it
// runs, its client.
type node struct {
	c         *cluster
	me        domain.LocalIdentity
	messages  *memory.MessageStore
	trust     *memory.TrustStore
	transfers *memory.TransferStore
	local     *memory.LocalFiles
	downloads *memory.Downloads
	events    *memory.EventRecorder
	opts      app.Options
	mailKeys  *memory.MailKeyStore

	// lan, when set, is a second registry standing in for LAN discovery:
	// the client composes both with app.Directories.
	lan ports.RegistryService

	host   *memory.Host
	dir    *memory.Directory
	client *app.Client
	stopFn func()
	done   chan error
}

func (c *cluster) newNode(name string) *node {
	return c.nodeFor(mkLocal(c.t, name))
}

func (c *cluster) nodeFor(me domain.LocalIdentity) *node {
	n := &node{c: c, me: me, messages: memory.NewMessageStore(), trust: memory.NewTrustStore(),
		transfers: memory.NewTransferStore(), local: memory.NewLocalFiles(), downloads: memory.NewDownloads(),
		events: memory.NewEventRecorder(), mailKeys: memory.NewMailKeyStore(),
		opts: app.Options{Retry: app.Backoff{Min: 50 * time.Millisecond, Max: 400 * time.Millisecond}}}
	c.t.Cleanup(n.stop)
	return n
}

// start builds the client on fresh adapters (as a restart would) and runs
// it; it returns once the registry lists it online, or Run's error.
func (n *node) start() error {
	t := n.c.t
	t.Helper()
	if n.client != nil {
		t.Fatalf("%s is running already", n.me.Name())
	}
	clock := memory.NewRealClock()
	bus := app.NewBus()
	var pv *app.PeerVerifier
	host, closeHost, err := memory.NewHost(n.c.net, n.me, memory.VerifierFunc(func(ctx context.Context, id domain.Identity) error {
		return pv.VerifyPeer(ctx, id)
	}))
	if err != nil {
		t.Fatal(err)
	}
	dir, closeDir, err := memory.NewDirectory(n.c.reg, host, memory.DirectoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var composed ports.Directory = dir
	closeLAN := func() {}
	if n.lan != nil {
		var lanDir *memory.Directory
		if lanDir, closeLAN, err = memory.NewDirectory(n.lan, host, memory.DirectoryConfig{}); err != nil {
			t.Fatal(err)
		}
		if composed, err = app.NewDirectories(dir, lanDir); err != nil {
			t.Fatal(err)
		}
	}
	if pv, err = app.NewPeerVerifier(n.trust, composed, clock, bus); err != nil {
		t.Fatal(err)
	}
	var mail app.MailPorts
	if n.c.mailbox != nil {
		mail = app.MailPorts{Box: memory.NewMailbox(n.c.mailbox, n.c.reg, dir), Sealer: seal.New(), Keys: n.mailKeys}
	}
	client, err := app.NewClient(n.me, composed, host.Link(), host.Files(), n.messages, n.trust, n.transfers,
		n.local, n.downloads, clock, bus, mail, n.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	forwarded := make(chan struct{})
	events := client.Subscribe(ctx)
	go func() {
		defer close(forwarded)
		for e := range events {
			n.events.Publish(e)
		}
	}()
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx) }()
	n.host, n.dir, n.client, n.done = host, dir, client, done
	n.stopFn = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, domain.ErrNameTaken) {
				t.Errorf("%s: Run: %v", n.me.Name(), err)
			}
		case <-time.After(e2eTimeout):
			t.Errorf("%s: Run did not return after cancel", n.me.Name())
		}
		<-forwarded
		closeLAN()
		closeDir()
		closeHost()
	}
	deadline := time.After(e2eTimeout)
	for {
		select {
		case err := <-done:
			done <- err // for stop
			return err
		case <-deadline:
			t.Fatalf("%s did not come online", n.me.Name())
		case <-time.After(10 * time.Millisecond):
		}
		if p, err := n.c.reg.Lookup(context.Background(), n.me.Name()); err == nil && p.Online && p.Identity.SameKey(n.me.PublicKey()) {
			return nil
		}
	}
}

// stop cancels the client and waits for every goroutine it started.
func (n *node) stop() {
	if n.client == nil {
		return
	}
	n.stopFn()
	n.client, n.stopFn = nil, nil
}

func (n *node) mustStart() {
	n.c.t.Helper()
	if err := n.start(); err != nil {
		n.c.t.Fatalf("%s: %v", n.me.Name(), err)
	}
}

// waitPresence waits for a PresenceEvent about who with the given state.
func (n *node) waitPresence(who *node, online bool) {
	n.c.t.Helper()
	_, err := memory.WaitForEvent(n.events, e2eTimeout, func(e ports.PresenceEvent) bool {
		return e.Peer.Name().Equal(who.me.Name()) && e.Peer.Online == online
	})
	if err != nil {
		n.c.t.Fatalf("%s never saw %s online=%v: %v", n.me.Name(), who.me.Name(), online, err)
	}
}

// history is n's conversation with peer, oldest first.
func (n *node) history(peer *node) []domain.Message {
	n.c.t.Helper()
	h, err := n.client.History(context.Background(), peer.me.Name(), 10000)
	if err != nil {
		n.c.t.Fatal(err)
	}
	return h
}

// eventually polls cond every 20 ms up to e2eTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(e2eTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestE2EThreeClientsSeeEachOtherComeAndGoLive(t *testing.T) {
	c := newCluster(t)
	alice, bob, carol := c.newNode("alice"), c.newNode("bob"), c.newNode("carol")
	alice.mustStart()
	bob.mustStart()
	carol.mustStart()
	for _, n := range []*node{alice, bob, carol} {
		for _, o := range []*node{alice, bob, carol} {
			if n != o {
				n.waitPresence(o, true)
			}
		}
	}
	peers, err := alice.client.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 || !peers[0].Peer.Online || !peers[1].Peer.Online {
		t.Fatalf("alice lists %+v, want bob and carol online", peers)
	}
	carol.stop()
	alice.waitPresence(carol, false)
	bob.waitPresence(carol, false)
	eventually(t, "alice lists carol offline", func() bool {
		peers, err := alice.client.Peers(context.Background())
		if err != nil || len(peers) != 2 {
			return false
		}
		return peers[0].Peer.Name().Equal(bob.me.Name()) && peers[0].Peer.Online && !peers[1].Peer.Online
	})
	// And back: a restarted carol shows up online again, live.
	from := alice.events.Len()
	carol.mustStart()
	if _, _, err := alice.events.WaitFrom(from, e2eTimeout, func(e ports.Event) bool {
		p, ok := e.(ports.PresenceEvent)
		return ok && p.Peer.Name().Equal(carol.me.Name()) && p.Peer.Online
	}); err != nil {
		t.Fatalf("alice did not see carol come back: %v", err)
	}
}

// checkConversation asserts that to received exactly want from from, in
// order, and that from saw every one of them delivered.
func checkConversation(t *testing.T, from, to *node, want []string) {
	t.Helper()
	var got []string
	for _, m := range to.history(from) {
		if m.Direction() == domain.Incoming {
			got = append(got, m.Body())
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s received %d messages from %s, want %d", to.me.Name(), len(got), from.me.Name(), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s's message %d from %s is %q, want %q (lost, duplicated or out of order)", to.me.Name(), i, from.me.Name(), got[i], want[i])
		}
	}
	for _, m := range from.history(to) {
		if m.Direction() == domain.Outgoing && m.State() != domain.MessageDelivered && m.State() != domain.MessageRead {
			t.Fatalf("%s's message %q is %v, not delivered", from.me.Name(), m.Body(), m.State())
		}
	}
}

// delivered counts from's messages to to that were acknowledged.
func delivered(t *testing.T, from, to *node) int {
	n := 0
	for _, m := range from.history(to) {
		if m.Direction() == domain.Outgoing && m.State() == domain.MessageDelivered {
			n++
		}
	}
	return n
}

func TestE2EThousandMessagesEachWayNoneLostNoneDuplicatedInOrder(t *testing.T) {
	const count = 1000
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	bob.waitPresence(alice, true)
	// One envelope in twenty is lost on the way, acknowledgements included.
	c.net.Drop(alice.host, bob.host, 0.05)

	send := func(from, to *node) []string {
		var bodies []string
		for i := range count {
			body := fmt.Sprintf("%s→%s #%04d", from.me.Name(), to.me.Name(), i)
			if _, err := from.client.Send(context.Background(), to.me.Name(), body); err != nil {
				t.Errorf("send %d: %v", i, err)
				return nil
			}
			bodies = append(bodies, body)
		}
		return bodies
	}
	var wg sync.WaitGroup
	var toBob, toAlice []string
	wg.Add(2)
	go func() { defer wg.Done(); toBob = send(alice, bob) }()
	go func() { defer wg.Done(); toAlice = send(bob, alice) }()
	wg.Wait()
	if t.Failed() {
		return
	}
	eventually(t, "every message acknowledged both ways", func() bool {
		return delivered(t, alice, bob) == count && delivered(t, bob, alice) == count
	})
	checkConversation(t, alice, bob, toBob)
	checkConversation(t, bob, alice, toAlice)
	// Each message was reported to the UI exactly once.
	n := 0
	for _, e := range bob.events.Events() {
		if m, ok := e.(ports.MessageEvent); ok && m.Message.Direction() == domain.Incoming {
			n++
		}
	}
	if n != count {
		t.Fatalf("bob was shown %d incoming messages, want %d", n, count)
	}
}

func TestE2EOfflinePeerReceivesTheRestWhenBack(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	var want []string
	say := func(i int) {
		body := fmt.Sprintf("line %02d", i)
		if _, err := alice.client.Send(ctx, bob.me.Name(), body); err != nil {
			t.Fatal(err)
		}
		want = append(want, body)
	}
	for i := range 5 {
		say(i)
	}
	eventually(t, "the first five delivered", func() bool { return delivered(t, alice, bob) == 5 })

	from := alice.events.Len()
	bob.stop()
	if _, _, err := alice.events.WaitFrom(from, e2eTimeout, func(e ports.Event) bool {
		p, ok := e.(ports.PresenceEvent)
		return ok && p.Peer.Name().Equal(bob.me.Name()) && !p.Peer.Online
	}); err != nil {
		t.Fatalf("alice did not see bob leave: %v", err)
	}
	for i := 5; i < 15; i++ {
		say(i) // queued in alice's outbox while bob is away
	}
	box, err := alice.messages.Outbox(ctx, bob.me.Name())
	if err != nil || len(box) != 10 {
		t.Fatalf("alice's outbox holds %d messages (err %v), want 10", len(box), err)
	}
	bob.mustStart() // same profile, fresh adapters: a restart
	eventually(t, "the rest delivered after bob returned", func() bool { return delivered(t, alice, bob) == 15 })
	checkConversation(t, alice, bob, want)
}

// offerFrom waits until to sees an offer from from and returns its ID.
func waitTransfer(t *testing.T, n *node, match func(domain.Transfer) bool) domain.Transfer {
	t.Helper()
	e, err := memory.WaitForEvent(n.events, e2eTimeout, func(e ports.TransferEvent) bool { return match(e.Transfer) })
	if err != nil {
		t.Fatalf("%s: no such transfer event: %v", n.me.Name(), err)
	}
	return e.Transfer
}

func inState(id domain.TransferID, s domain.TransferState) func(domain.Transfer) bool {
	return func(tr domain.Transfer) bool { return tr.ID() == id && tr.State() == s }
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestE2EFileOfferAcceptedProgressesAndCompletesWithTheSameHash(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	photo := randomBytes(t, 3<<20+12345)
	alice.local.Put("/home/alice/photo.jpg", photo)
	album := map[string][]byte{"a.txt": []byte("first"), "sub/b.bin": randomBytes(t, 200<<10), "empty": nil}
	for p, b := range album {
		alice.local.Put("/home/alice/album/"+p, b)
	}
	// Streams break now and then: transfers must resume, not restart.
	c.net.Drop(alice.host, bob.host, 0.02)

	out, err := alice.client.SendFile(ctx, bob.me.Name(), "/home/alice/photo.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if f := out.Manifest().Files[0]; f.Hash != ([32]byte{}) || f.Size != int64(len(photo)) {
		t.Fatal("the offer should carry the size and no hash: files are hashed while they are sent")
	}
	outAlbum, err := alice.client.SendFile(ctx, bob.me.Name(), "/home/alice/album")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []domain.Transfer{out, outAlbum} {
		offered := waitTransfer(t, bob, inState(tr.ID(), domain.TransferOffered))
		if offered.Direction() != domain.Incoming || offered.Total() != tr.Total() {
			t.Fatalf("bob sees %v of %d bytes", offered.Direction(), offered.Total())
		}
		// The envelope may be lost (drop fault); accepting again is harmless.
		if err := bob.client.AcceptTransfer(ctx, tr.ID()); err != nil {
			t.Logf("accept: %v (retried when the peer is online)", err)
		}
	}
	for _, tr := range []domain.Transfer{out, outAlbum} {
		for _, n := range []*node{alice, bob} {
			done := waitTransfer(t, n, inState(tr.ID(), domain.TransferCompleted))
			if done.Done() != tr.Total() {
				t.Fatalf("%s: completed with %d of %d bytes", n.me.Name(), done.Done(), tr.Total())
			}
		}
	}
	got, ok := bob.downloads.File("photo.jpg")
	if !ok || sha256.Sum256(got) != sha256.Sum256(photo) {
		t.Fatalf("bob's photo.jpg: present %v, same hash %v", ok, ok && bytes.Equal(got, photo))
	}
	for p, want := range album {
		got, ok := bob.downloads.File("album/" + p)
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("bob's album/%s: present %v, %d bytes, want %d", p, ok, len(got), len(want))
		}
	}
	// Progress was reported on both sides while bytes moved.
	for _, n := range []*node{alice, bob} {
		waitTransfer(t, n, inState(out.ID(), domain.TransferInProgress))
	}
	if n := len(bob.downloads.Files()); n != 1+len(album) {
		t.Fatalf("bob has %d files (%v): a resumed file was written twice?", n, bob.downloads.Files())
	}
}

func TestE2EDeclinedAndCancelledTransfers(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	alice.local.Put("/tmp/unwanted.iso", randomBytes(t, 100<<10))
	alice.local.Put("/tmp/big.bin", randomBytes(t, 1<<20))

	t.Run("declined", func(t *testing.T) {
		tr, err := alice.client.SendFile(ctx, bob.me.Name(), "/tmp/unwanted.iso")
		if err != nil {
			t.Fatal(err)
		}
		waitTransfer(t, bob, inState(tr.ID(), domain.TransferOffered))
		if err := bob.client.DeclineTransfer(ctx, tr.ID()); err != nil {
			t.Fatal(err)
		}
		waitTransfer(t, alice, inState(tr.ID(), domain.TransferDeclined))
		if _, ok := bob.downloads.File("unwanted.iso"); ok {
			t.Fatal("a declined file arrived")
		}
	})
	t.Run("cancelled by the sender while streaming", func(t *testing.T) {
		// Streams start late, so the cancel lands while the transfer runs.
		c.net.Delay(alice.host, bob.host, 300*time.Millisecond)
		defer c.net.Heal(alice.host, bob.host)
		tr, err := alice.client.SendFile(ctx, bob.me.Name(), "/tmp/big.bin")
		if err != nil {
			t.Fatal(err)
		}
		waitTransfer(t, bob, inState(tr.ID(), domain.TransferOffered))
		if err := bob.client.AcceptTransfer(ctx, tr.ID()); err != nil {
			t.Fatal(err)
		}
		waitTransfer(t, alice, inState(tr.ID(), domain.TransferInProgress))
		if err := alice.client.CancelTransfer(ctx, tr.ID()); err != nil {
			t.Fatal(err)
		}
		waitTransfer(t, alice, inState(tr.ID(), domain.TransferCancelled))
		waitTransfer(t, bob, inState(tr.ID(), domain.TransferCancelled))
		if _, ok := bob.downloads.File("big.bin"); ok {
			t.Fatal("a cancelled file got its final name")
		}
		eventually(t, "bob's part removed", func() bool { _, ok := bob.downloads.Part(tr.ID(), "big.bin"); return !ok })
	})
	t.Run("cancelled by the receiver", func(t *testing.T) {
		tr, err := alice.client.SendFile(ctx, bob.me.Name(), "/tmp/unwanted.iso")
		if err != nil {
			t.Fatal(err)
		}
		waitTransfer(t, bob, inState(tr.ID(), domain.TransferOffered))
		if err := bob.client.CancelTransfer(ctx, tr.ID()); err != nil {
			t.Fatal(err)
		}
		waitTransfer(t, bob, inState(tr.ID(), domain.TransferCancelled))
		waitTransfer(t, alice, inState(tr.ID(), domain.TransferCancelled))
	})
}

func TestE2EASecondKeyCannotTakeARegisteredName(t *testing.T) {
	c := newCluster(t)
	alice := c.newNode("alice")
	alice.mustStart()
	impostor := c.newNode("ALICE") // the same account, another key
	err := impostor.start()
	if !errors.Is(err, domain.ErrNameTaken) {
		t.Fatalf("impostor's Run: %v, want ErrNameTaken", err)
	}
	p, err := c.reg.Lookup(context.Background(), alice.me.Name())
	if err != nil || !p.Identity.SameKey(alice.me.PublicKey()) || !p.Online {
		t.Fatalf("alice's registration after the attempt: %+v, %v", p, err)
	}
}

func TestE2EAChangedKeyIsDetectedAndSendingToItBlocked(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	// alice talked to a "bob" with another key before (the registry was
	// reset, or it lies): that key is pinned.
	oldBob := mkLocal(t, "bob")
	if err := alice.trust.Pin(context.Background(), oldBob.Identity, time.Now()); err != nil {
		t.Fatal(err)
	}
	alice.mustStart()
	bob.mustStart()
	ctx := context.Background()
	kc, err := memory.WaitForEvent(alice.events, e2eTimeout, func(e ports.KeyChangedEvent) bool { return e.Name.Equal(bob.me.Name()) })
	if err != nil {
		t.Fatalf("no KeyChangedEvent: %v", err)
	}
	if kc.Old != oldBob.Fingerprint() || kc.New != bob.me.Fingerprint() {
		t.Fatalf("key change %s → %s, want %s → %s", kc.Old.Short(), kc.New.Short(), oldBob.Fingerprint().Short(), bob.me.Fingerprint().Short())
	}
	var kerr *domain.KeyChangedError
	if _, err := alice.client.Send(ctx, bob.me.Name(), "are you bob?"); !errors.As(err, &kerr) {
		t.Fatalf("sending to a changed key: %v, want *domain.KeyChangedError", err)
	}
	peers, err := alice.client.Peers(ctx)
	if err != nil || len(peers) != 1 || !peers[0].KeyChanged {
		t.Fatalf("alice's peer list %+v (%v): bob should be flagged", peers, err)
	}
	// bob writes to alice: alice's link refuses the unexpected key, so
	// nothing reaches her history while the change is pending.
	if _, err := bob.client.Send(ctx, alice.me.Name(), "hi alice"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // give a wrongly accepted message time to show up
	if h := alice.history(bob); len(h) != 0 {
		t.Fatalf("alice stored %d messages from a key she has not accepted", len(h))
	}
	// alice compares safety numbers out of band and accepts the new key.
	view, err := alice.client.Safety(ctx, bob.me.Name())
	if err != nil || view.PendingKey == nil || *view.PendingKey != bob.me.Fingerprint() {
		t.Fatalf("safety view %+v, %v", view, err)
	}
	if err := alice.client.AcceptKeyChange(ctx, bob.me.Name()); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.client.Send(ctx, bob.me.Name(), "now I trust you"); err != nil {
		t.Fatalf("send after accepting: %v", err)
	}
	eventually(t, "both messages delivered", func() bool { return delivered(t, alice, bob) == 1 && delivered(t, bob, alice) == 1 })
	if err := alice.client.SetVerified(ctx, bob.me.Name(), true); err != nil {
		t.Fatal(err)
	}
	view, err = alice.client.Safety(ctx, bob.me.Name())
	if err != nil || !view.Verified || view.PendingKey != nil || view.SafetyNumber != domain.SafetyNumber(alice.me.PublicKey(), bob.me.PublicKey()) {
		t.Fatalf("after verifying: %+v, %v", view, err)
	}
}

func TestE2ETransferResumesAfterTheSenderRestarts(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	video := randomBytes(t, 2<<20)
	alice.local.Put("/videos/talk.mp4", video)
	// bob kept part of this file from an earlier attempt: only the rest
	// should travel, and the whole must still match.
	c.net.Delay(alice.host, bob.host, 300*time.Millisecond)
	tr, err := alice.client.SendFile(ctx, bob.me.Name(), "/videos/talk.mp4")
	if err != nil {
		t.Fatal(err)
	}
	waitTransfer(t, bob, inState(tr.ID(), domain.TransferOffered))
	bob.downloads.PutPart(tr.ID(), "talk.mp4", video[:700<<10])
	if err := bob.client.AcceptTransfer(ctx, tr.ID()); err != nil {
		t.Fatal(err)
	}
	waitTransfer(t, alice, inState(tr.ID(), domain.TransferInProgress))
	alice.stop() // while the stream is on its way
	stored, err := alice.transfers.Get(ctx, tr.ID())
	if err != nil || stored.State() != domain.TransferInterrupted || stored.Source() != "/videos/talk.mp4" {
		t.Fatalf("after the stop alice's transfer is %v from %q (%v), want interrupted, with its source", stored.State(), stored.Source(), err)
	}
	c.net.HealAll()
	alice.mustStart()
	for _, n := range []*node{alice, bob} {
		waitTransfer(t, n, inState(tr.ID(), domain.TransferCompleted))
	}
	got, ok := bob.downloads.File("talk.mp4")
	if !ok || !bytes.Equal(got, video) {
		t.Fatalf("bob's talk.mp4: present %v, %d bytes, equal %v", ok, len(got), bytes.Equal(got, video))
	}
}

// appGoroutines lists the stacks of goroutines running client code of this
// package (the registry's and the tests' own are left out).
func appGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "chatx/app.") && !strings.Contains(g, "app.(*Registry)") && !strings.Contains(g, "app_test.") {
			out = append(out, g)
		}
	}
	return out
}

func TestE2EAStoppedClientLeavesNoGoroutine(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	if _, err := alice.client.Send(ctx, bob.me.Name(), "hello"); err != nil {
		t.Fatal(err)
	}
	alice.local.Put("/f.bin", randomBytes(t, 300<<10))
	tr, err := alice.client.SendFile(ctx, bob.me.Name(), "/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	waitTransfer(t, bob, inState(tr.ID(), domain.TransferOffered))
	if err := bob.client.AcceptTransfer(ctx, tr.ID()); err != nil {
		t.Fatal(err)
	}
	waitTransfer(t, bob, inState(tr.ID(), domain.TransferCompleted))
	eventually(t, "the message delivered", func() bool { return delivered(t, alice, bob) == 1 })
	// A transfer still waiting for a peer keeps a goroutine until the stop.
	if _, err := alice.client.SendFile(ctx, bob.me.Name(), "/f.bin"); err != nil {
		t.Fatal(err)
	}
	if len(appGoroutines()) == 0 {
		t.Fatal("no client goroutine seen while the clients run: the check below would be blind")
	}
	alice.stop()
	bob.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := appGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the client still run after Run returned:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestE2EACutNetworkDelaysMessagesButLosesNone(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	var want []string
	say := func(i int) {
		body := fmt.Sprintf("msg %02d", i)
		if _, err := alice.client.Send(ctx, bob.me.Name(), body); err != nil {
			t.Fatal(err)
		}
		want = append(want, body)
	}
	say(0)
	eventually(t, "the first message delivered", func() bool { return delivered(t, alice, bob) == 1 })
	// bob's cable is pulled: no goodbye, the registry notices by expiry.
	from := alice.events.Len()
	c.net.Disconnect(bob.host)
	for i := 1; i < 10; i++ {
		say(i)
	}
	if _, _, err := alice.events.WaitFrom(from, e2eTimeout, func(e ports.Event) bool {
		p, ok := e.(ports.PresenceEvent)
		return ok && p.Peer.Name().Equal(bob.me.Name()) && !p.Peer.Online
	}); err != nil {
		t.Fatalf("alice never saw bob go offline: %v", err)
	}
	if n := delivered(t, alice, bob); n != 1 {
		t.Fatalf("%d messages delivered through a cut cable", n)
	}
	c.net.HealHost(bob.host)
	eventually(t, "every message delivered after the network came back", func() bool { return delivered(t, alice, bob) == 10 })
	checkConversation(t, alice, bob, want)
}

func TestE2EAutoAcceptTakesWhatFitsAndDeclinesTheRest(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	bob.opts.AutoAccept = true
	bob.opts.MaxIncomingSize = 64 << 10
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	small, big := randomBytes(t, 10<<10), randomBytes(t, 65<<10)
	alice.local.Put("/small.txt", small)
	alice.local.Put("/big.txt", big)
	trSmall, err := alice.client.SendFile(ctx, bob.me.Name(), "/small.txt")
	if err != nil {
		t.Fatal(err)
	}
	trBig, err := alice.client.SendFile(ctx, bob.me.Name(), "/big.txt")
	if err != nil {
		t.Fatal(err)
	}
	waitTransfer(t, alice, inState(trSmall.ID(), domain.TransferCompleted))
	if got := waitTransfer(t, bob, inState(trSmall.ID(), domain.TransferCompleted)); got.SavedAs() != "small.txt" {
		t.Fatalf("bob's transfer says it was saved as %q, want small.txt", got.SavedAs())
	}
	declined := waitTransfer(t, alice, inState(trBig.ID(), domain.TransferDeclined))
	if r := declined.Reason(); !strings.Contains(r, "declined by bob") || !strings.Contains(r, "over the receiver's limit") {
		t.Fatalf("the sender sees the refusal as %q; want who and why", r)
	}
	if got, ok := bob.downloads.File("small.txt"); !ok || !bytes.Equal(got, small) {
		t.Fatal("the small file did not arrive intact")
	}
	if _, ok := bob.downloads.File("big.txt"); ok {
		t.Fatal("a file over the limit arrived")
	}
}

func TestE2EAFullDiskFailsTheTransferOnBothSidesAndNamesNoFile(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	alice.local.Put("/tmp/big.bin", randomBytes(t, 4<<20))
	alice.local.Put("/tmp/small.bin", randomBytes(t, 64<<10))

	t.Run("too little space to accept", func(t *testing.T) {
		bob.downloads.SetAvailable(1 << 20)
		defer bob.downloads.SetAvailable(1 << 40)
		tr, err := alice.client.SendFile(ctx, bob.me.Name(), "/tmp/big.bin")
		if err != nil {
			t.Fatal(err)
		}
		waitTransfer(t, bob, inState(tr.ID(), domain.TransferOffered))
		if err := bob.client.AcceptTransfer(ctx, tr.ID()); !errors.Is(err, domain.ErrTooLarge) {
			t.Fatalf("accepting 4 MiB with 1 MiB free: %v, want ErrTooLarge", err)
		}
		if _, ok := bob.downloads.Part(tr.ID(), "big.bin"); ok {
			t.Fatal("a part file was made for an offer that was not accepted")
		}
	})
	t.Run("the disk fills while bytes arrive", func(t *testing.T) {
		// The link is slow to start, so the disk fills between the accept and the bytes.
		c.net.Delay(alice.host, bob.host, 300*time.Millisecond)
		defer c.net.Heal(alice.host, bob.host)
		tr, err := alice.client.SendFile(ctx, bob.me.Name(), "/tmp/big.bin")
		if err != nil {
			t.Fatal(err)
		}
		waitTransfer(t, bob, inState(tr.ID(), domain.TransferOffered))
		if err := bob.client.AcceptTransfer(ctx, tr.ID()); err != nil {
			t.Fatal(err)
		}
		bob.downloads.SetAvailable(256 << 10) // another program took the space
		defer bob.downloads.SetAvailable(1 << 40)
		failedAt := func(n *node) domain.Transfer {
			return waitTransfer(t, n, func(x domain.Transfer) bool {
				return x.ID() == tr.ID() && (x.State() == domain.TransferFailed || x.State() == domain.TransferCompleted)
			})
		}
		for _, n := range []*node{bob, alice} {
			got := failedAt(n)
			if got.State() != domain.TransferFailed || !strings.Contains(got.Reason(), "no space left") {
				t.Fatalf("%s: transfer %v, reason %q; want failed, saying there is no space left", n.me.Name(), got.State(), got.Reason())
			}
			t.Logf("%s sees: %s", n.me.Name(), got.Reason())
		}
		if _, ok := bob.downloads.File("big.bin"); ok {
			t.Fatal("a file that did not fit got its final name")
		}
	})
}

// An online peer that cannot be reached is reported once, with the reason,
// and again once when it is reached; nothing is lost meanwhile.
func TestE2EAnUnreachableOnlinePeerIsReportedOncePerChange(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	from := alice.events.Len()
	c.net.Partition(alice.host, bob.host) // both stay online at the registry
	for i := range 3 {
		if _, err := alice.client.Send(ctx, bob.me.Name(), fmt.Sprintf("through the wall %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	isReach := func(reachable bool) func(ports.Event) bool {
		return func(e ports.Event) bool {
			r, ok := e.(ports.ReachabilityEvent)
			return ok && r.Peer.Equal(bob.me.Name()) && r.Reachable == reachable
		}
	}
	ev, at, err := alice.events.WaitFrom(from, e2eTimeout, isReach(false))
	if err != nil {
		t.Fatalf("no unreachable event: %v", err)
	}
	if r := ev.(ports.ReachabilityEvent); r.Reason == "" {
		t.Errorf("unreachable without a reason: %+v", r)
	}
	c.net.Heal(alice.host, bob.host)
	if _, _, err := alice.events.WaitFrom(at+1, e2eTimeout, isReach(true)); err != nil {
		t.Fatalf("no reachable event after healing: %v", err)
	}
	eventually(t, "all three delivered", func() bool { return delivered(t, alice, bob) == 3 })
	n := 0
	for _, e := range alice.events.Events() {
		if isReach(false)(e) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d unreachable events for one outage, want 1", n)
	}
}

func TestE2EReceivedTransferSaysWhereItWasSaved(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	alice.local.Put("/home/alice/notes.txt", []byte("new notes"))
	alice.local.Put("/home/alice/album/a.txt", []byte("a"))
	bob.downloads.PutFile("notes.txt", []byte("bob's own notes")) // the name is taken
	for _, tc := range []struct{ path, want string }{
		{"/home/alice/notes.txt", "notes (1).txt"},
		{"/home/alice/album", "album"},
	} {
		out, err := alice.client.SendFile(ctx, bob.me.Name(), tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if out.SavedAs() != "" {
			t.Fatalf("an outgoing transfer says it was saved as %q", out.SavedAs())
		}
		waitTransfer(t, bob, inState(out.ID(), domain.TransferOffered))
		if err := bob.client.AcceptTransfer(ctx, out.ID()); err != nil {
			t.Fatal(err)
		}
		done := waitTransfer(t, bob, inState(out.ID(), domain.TransferCompleted))
		if done.SavedAs() != tc.want {
			t.Fatalf("%s saved as %q, want %q", tc.path, done.SavedAs(), tc.want)
		}
		if _, ok := bob.downloads.File(tc.want); !ok && tc.want != "album" {
			t.Fatalf("no file at %q", tc.want)
		}
	}
	if got, _ := bob.downloads.File("notes.txt"); string(got) != "bob's own notes" {
		t.Fatalf("bob's own file was overwritten: %q", got)
	}
}

func TestE2ERefusalsAndCancelsSayWhoAndWhy(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	alice.local.Put("/a.txt", randomBytes(t, 1<<10))

	// An offer refused before it is stored (too many waiting) still gets
	// an answer with the reason.
	var last domain.Transfer
	for range 33 {
		tr, err := alice.client.SendFile(ctx, bob.me.Name(), "/a.txt")
		if err != nil {
			t.Fatal(err)
		}
		last = tr
	}
	got := waitTransfer(t, alice, inState(last.ID(), domain.TransferDeclined))
	if !strings.Contains(got.Reason(), "wait for an answer") {
		t.Fatalf("refused offer: reason %q", got.Reason())
	}

	// A cancel says on both sides who cancelled.
	tr, err := alice.client.SendFile(ctx, bob.me.Name(), "/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.client.DeclineTransfer(ctx, tr.ID()); err == nil {
		t.Fatal("bob declined an offer he never stored")
	}
	list, err := bob.client.Transfers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := list[len(list)-1] // the oldest offer waiting at bob
	if err := alice.client.CancelTransfer(ctx, victim.ID()); err != nil {
		t.Fatal(err)
	}
	if got := waitTransfer(t, bob, inState(victim.ID(), domain.TransferCancelled)); got.Reason() != "cancelled by alice" {
		t.Fatalf("bob sees the cancel as %q", got.Reason())
	}
	if got := waitTransfer(t, alice, inState(victim.ID(), domain.TransferCancelled)); got.Reason() != "cancelled by you" {
		t.Fatalf("alice sees her cancel as %q", got.Reason())
	}
}
