package app_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var fastRetry = app.Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}

func onlinePeer(id domain.Identity) domain.Peer {
	return domain.Peer{Identity: id, Online: true, Endpoints: domain.Endpoints{Link: []string{"l"}, File: []string{"f"}}}
}

// world is one client's use-cases over fakes and memory stores.
type world struct {
	me        domain.LocalIdentity
	bob       domain.LocalIdentity
	dir       *fakeDirectory
	link      *fakeLink
	messages  *memory.MessageStore
	trust     *memory.TrustStore
	transfers *memory.TransferStore
	downloads *fakeDownloads
	clock     *memory.Clock
	events    *recorder
	verify    *app.VerifyContact
	send      *app.SendMessage
	receive   *app.ReceiveMessage
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{me: mkLocal(t, "alice"), bob: mkLocal(t, "bob"), link: newFakeLink(),
		messages: memory.NewMessageStore(), trust: memory.NewTrustStore(), transfers: memory.NewTransferStore(),
		downloads: newFakeDownloads(), clock: memory.NewRealClock(), events: &recorder{}}
	w.dir = newFakeDirectory(onlinePeer(w.bob.Identity))
	var err error
	if w.verify, err = app.NewVerifyContact(w.me, w.trust, w.dir, w.clock, w.events); err != nil {
		t.Fatal(err)
	}
	if w.send, err = app.NewSendMessage(w.me, w.link, w.messages, w.verify, w.clock, w.events, fastRetry); err != nil {
		t.Fatal(err)
	}
	if w.receive, err = app.NewReceiveMessage(w.me, w.link, w.messages, w.verify, w.send, w.events); err != nil {
		t.Fatal(err)
	}
	return w
}

// run runs f until the test ends.
func run(t *testing.T, f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("a use-case did not stop when its context was cancelled")
		}
	})
}

func TestConstructorsRejectNilPorts(t *testing.T) {
	w := newWorld(t)
	tests := map[string]func() error{
		"register":      func() error { _, err := app.NewRegister(w.me, nil, w.link, fakeTransport{}); return err },
		"verify":        func() error { _, err := app.NewVerifyContact(w.me, nil, w.dir, w.clock, w.events); return err },
		"peer verifier": func() error { _, err := app.NewPeerVerifier(w.trust, nil, w.clock, w.events); return err },
		"discover": func() error {
			_, err := app.NewDiscoverPeers(w.me, w.dir, w.trust, nil, w.events, fastRetry)
			return err
		},
		"send": func() error {
			_, err := app.NewSendMessage(w.me, nil, w.messages, w.verify, w.clock, w.events, fastRetry)
			return err
		},
		"receive": func() error {
			_, err := app.NewReceiveMessage(w.me, w.link, nil, w.verify, w.send, w.events)
			return err
		},
		"transfer": func() error {
			_, err := app.NewTransferFile(w.me, nil, fakeTransport{}, w.link, w.transfers, w.verify, w.clock, w.events, fastRetry)
			return err
		},
		"receive file": func() error { _, err := app.NewReceiveFile(w.me, nil, w.transfers, w.clock, w.events); return err },
		"accept": func() error {
			_, err := app.NewAcceptTransfer(w.downloads, w.link, nil, w.verify, w.clock, w.events, 0)
			return err
		},
		"decline": func() error {
			_, err := app.NewDeclineTransfer(w.link, w.transfers, w.verify, nil, w.events)
			return err
		},
		"search": func() error { _, err := app.NewSearchHistory(nil); return err },
		"client w/o bus": func() error {
			_, err := app.NewClient(w.me, w.dir, w.link, fakeTransport{}, w.messages, w.trust, memory.NewQuarantineStore(), w.transfers, fakeFiles{}, w.downloads, memory.NewGroupStore(), w.clock, nil, app.MailPorts{}, app.Options{})
			return err
		},
		"client w/o store": func() error {
			_, err := app.NewClient(w.me, w.dir, w.link, fakeTransport{}, nil, w.trust, memory.NewQuarantineStore(), w.transfers, fakeFiles{}, w.downloads, memory.NewGroupStore(), w.clock, app.NewBus(), app.MailPorts{}, app.Options{})
			return err
		},
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			if f() == nil {
				t.Fatal("constructor accepted a nil port")
			}
		})
	}
}

// storeCheckingSink fails the test if a message is reported before it is stored.
type storeCheckingSink struct {
	t        *testing.T
	store    *memory.MessageStore
	reported chan domain.Message
}

func (s storeCheckingSink) Publish(e ports.Event) {
	me, ok := e.(ports.MessageEvent)
	if !ok {
		return
	}
	box, err := s.store.Outbox(context.Background(), me.Message.To())
	if err != nil {
		s.t.Error(err)
	}
	found := false
	for _, m := range box {
		found = found || m.ID() == me.Message.ID()
	}
	if !found {
		s.t.Errorf("message %s reported before it was in the outbox", me.Message.ID())
	}
	s.reported <- me.Message
}

func TestSendMessageIsInTheOutboxBeforeItIsReported(t *testing.T) {
	w := newWorld(t)
	sink := storeCheckingSink{t: t, store: w.messages, reported: make(chan domain.Message, 1)}
	send, err := app.NewSendMessage(w.me, w.link, w.messages, w.verify, w.clock, sink, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	m, err := send.Handle(context.Background(), app.SendMessageInput{To: w.bob.Name(), Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if got := <-sink.reported; got.ID() != m.ID() || got.State() != domain.MessageQueued {
		t.Fatalf("reported %v in state %v", got.ID(), got.State())
	}
}

func TestSendMessageStampsStrictlyIncrease(t *testing.T) {
	w := newWorld(t)
	frozen := memory.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	send, err := app.NewSendMessage(w.me, w.link, w.messages, w.verify, frozen, w.events, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	for i := range 50 {
		m, err := send.Handle(context.Background(), app.SendMessageInput{To: w.bob.Name(), Text: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !m.SentAt().After(last) {
			t.Fatalf("message %d stamped %v, not after %v", i, m.SentAt(), last)
		}
		last = m.SentAt()
	}
}

func TestSendMessageRefusesBadInput(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name string
		to   domain.Username
		text string
		want error
	}{
		{"empty", w.bob.Name(), "", domain.ErrEmptyMessage},
		{"too long", w.bob.Name(), string(make([]byte, domain.MaxMessageBytes+1)), domain.ErrMessageTooLong},
		{"unknown peer", domain.MustUsername("nobody"), "hi", domain.ErrUnknownPeer},
		{"myself", w.me.Name(), "hi", domain.ErrUnknownPeer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.send.Handle(context.Background(), app.SendMessageInput{To: tc.to, Text: tc.text})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func messageState(t *testing.T, w *world, id domain.MessageID) domain.MessageState {
	t.Helper()
	h, err := w.messages.History(context.Background(), w.bob.Name(), time.Time{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h {
		if m.ID() == id {
			return m.State()
		}
	}
	t.Fatalf("message %s not in history", id)
	return 0
}

func TestSendMessageRetriesUntilAcknowledged(t *testing.T) {
	w := newWorld(t)
	// The first two writes of every message fail.
	w.link.fail = func(env ports.Envelope, attempt int) error {
		if env.Kind == ports.KindChat && attempt <= 2 {
			return domain.ErrPeerOffline
		}
		return nil
	}
	run(t, w.send.Run)
	ctx := context.Background()
	var ids []domain.MessageID
	for _, text := range []string{"one", "two", "three"} {
		m, err := w.send.Handle(ctx, app.SendMessageInput{To: w.bob.Name(), Text: text})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID())
	}
	// Unacknowledged, each message is written again and again.
	waitFor(t, "every message written twice", func() bool {
		w.link.mu.Lock()
		defer w.link.mu.Unlock()
		for _, id := range ids {
			if w.link.seen[id] < 4 {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		if s := messageState(t, w, id); s != domain.MessageSent {
			t.Fatalf("before the ack: state %v, want sent", s)
		}
	}
	// An ack from someone else changes nothing; bob's ack delivers.
	eve := mkLocal(t, "eve")
	if err := w.receive.Handle(ctx, app.ReceiveMessageInput{From: eve.Identity, Envelope: ports.Envelope{Kind: ports.KindDelivered, MessageID: ids[0]}}); err != nil {
		t.Fatal(err)
	}
	if s := messageState(t, w, ids[0]); s != domain.MessageSent {
		t.Fatalf("an ack from another peer moved the message to %v", s)
	}
	for _, id := range ids {
		if err := w.receive.Handle(ctx, app.ReceiveMessageInput{From: w.bob.Identity, Envelope: ports.Envelope{Kind: ports.KindDelivered, MessageID: id}}); err != nil {
			t.Fatal(err)
		}
		if s := messageState(t, w, id); s != domain.MessageDelivered {
			t.Fatalf("after the ack: state %v, want delivered", s)
		}
	}
	box, err := w.messages.Outbox(ctx, w.bob.Name())
	if err != nil || len(box) != 0 {
		t.Fatalf("outbox after acks: %d messages, err %v", len(box), err)
	}
	// In order: the first successful writes follow the sending order.
	var order []domain.MessageID
	seen := map[domain.MessageID]bool{}
	for _, s := range w.link.envelopes(ports.KindChat) {
		if !seen[s.Env.MessageID] {
			seen[s.Env.MessageID] = true
			order = append(order, s.Env.MessageID)
		}
	}
	for i := range ids {
		if order[i] != ids[i] {
			t.Fatalf("first writes out of order: %v, want %v", order, ids)
		}
	}
}

func TestReceiveMessageDeduplicatesAndAcknowledgesEveryCopy(t *testing.T) {
	w := newWorld(t)
	run(t, w.receive.Run)
	ctx := context.Background()
	env := ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), SentAt: time.Now(), Body: "hello"}
	for range 3 {
		if err := w.receive.Handle(ctx, app.ReceiveMessageInput{From: w.bob.Identity, Envelope: env}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := w.messages.History(ctx, w.bob.Name(), time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 || h[0].Body() != "hello" || h[0].From() != w.bob.Name() {
		t.Fatalf("history = %v, want the one message", h)
	}
	n := 0
	for _, e := range w.events.all() {
		if _, ok := e.(ports.MessageEvent); ok {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d message events, want 1", n)
	}
	if w.receive.Unread(w.bob.Name()) != 1 {
		t.Fatalf("unread = %d, want 1", w.receive.Unread(w.bob.Name()))
	}
	waitFor(t, "three acknowledgements", func() bool { return len(w.link.envelopes(ports.KindDelivered)) == 3 })
	for _, a := range w.link.envelopes(ports.KindDelivered) {
		if a.Env.MessageID != env.MessageID || !a.To.Identity.SameKey(w.bob.PublicKey()) {
			t.Fatalf("ack %v to %s", a.Env.MessageID, a.To.Name())
		}
	}
	// Bad input is refused, not stored.
	bad := ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: string([]byte{0xff, 0xfe})}
	if err := w.receive.Handle(ctx, app.ReceiveMessageInput{From: w.bob.Identity, Envelope: bad}); !errors.Is(err, domain.ErrInvalidUTF8) {
		t.Fatalf("invalid UTF-8: err = %v", err)
	}
	w.receive.MarkRead(w.bob.Name())
	waitFor(t, "a read receipt", func() bool { return len(w.link.envelopes(ports.KindRead)) == 1 })
	if w.receive.Unread(w.bob.Name()) != 0 {
		t.Fatal("unread not cleared")
	}
}

func TestVerifyContactBlocksAChangedKeyUntilAccepted(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if _, err := w.send.Handle(ctx, app.SendMessageInput{To: w.bob.Name(), Text: "first contact"}); err != nil {
		t.Fatal(err)
	}
	c, err := w.trust.Get(ctx, w.bob.Name())
	if err != nil || !c.Identity.SameKey(w.bob.PublicKey()) {
		t.Fatalf("bob not pinned on first use: %v", err)
	}
	// bob's name now comes with another key.
	mallory := mkLocal(t, "bob")
	w.dir.set(onlinePeer(mallory.Identity))
	_, err = w.verify.PeerForSend(ctx, w.bob.Name())
	var kc *domain.KeyChangedError
	if !errors.As(err, &kc) || kc.Old != w.bob.Fingerprint() || kc.New != mallory.Fingerprint() {
		t.Fatalf("PeerForSend err = %v, want a key change from bob's to mallory's key", err)
	}
	if _, err := w.send.Handle(ctx, app.SendMessageInput{To: w.bob.Name(), Text: "blocked"}); !errors.As(err, &kc) {
		t.Fatalf("sending to a changed key: err = %v", err)
	}
	found := false
	for _, e := range w.events.all() {
		if ke, ok := e.(ports.KeyChangedEvent); ok && ke.New == mallory.Fingerprint() {
			found = true
		}
	}
	if !found {
		t.Fatal("no KeyChangedEvent")
	}
	view, err := w.verify.Safety(ctx, app.VerifyContactInput{Name: w.bob.Name()})
	if err != nil || view.PendingKey == nil || *view.PendingKey != mallory.Fingerprint() {
		t.Fatalf("safety view = %+v, %v: want the pending key", view, err)
	}
	if err := w.verify.SetVerified(ctx, app.VerifyContactInput{Name: w.bob.Name(), Verified: true}); !errors.As(err, &kc) {
		t.Fatalf("verifying a contact with a pending change: err = %v", err)
	}
	if err := w.verify.AcceptKeyChange(ctx, app.VerifyContactInput{Name: w.bob.Name()}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.send.Handle(ctx, app.SendMessageInput{To: w.bob.Name(), Text: "after accepting"}); err != nil {
		t.Fatalf("sending after accepting the new key: %v", err)
	}
	view, err = w.verify.Safety(ctx, app.VerifyContactInput{Name: w.bob.Name()})
	if err != nil || view.Theirs != mallory.Fingerprint() || view.PendingKey != nil || view.Verified {
		t.Fatalf("after accepting: %+v, %v", view, err)
	}
	if view.SafetyNumber != domain.SafetyNumber(mallory.PublicKey(), w.me.PublicKey()) {
		t.Fatal("safety number is not the pair's")
	}
}

func TestPeerVerifier(t *testing.T) {
	ctx := context.Background()
	me := mkLocal(t, "alice")
	bob, other := mkLocal(t, "bob"), mkLocal(t, "bob")
	carol := mkLocal(t, "carol")
	tests := []struct {
		name      string
		pinned    *domain.LocalIdentity
		directory *domain.LocalIdentity
		presented domain.LocalIdentity
		check     func(error) bool
		pins      bool
	}{
		{"pinned key", &bob, nil, bob, func(err error) bool { return err == nil }, true},
		{"pinned, other key", &bob, &other, other, func(err error) bool { var kc *domain.KeyChangedError; return errors.As(err, &kc) }, false},
		{"unpinned, directory's key", nil, &bob, bob, func(err error) bool { return err == nil }, true},
		{"unpinned, not the directory's key", nil, &bob, other, func(err error) bool { return err != nil }, false},
		{"nobody knows", nil, nil, carol, func(err error) bool { return errors.Is(err, domain.ErrUnknownPeer) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			trust := memory.NewTrustStore()
			dir := newFakeDirectory()
			if tc.pinned != nil {
				if err := trust.Pin(ctx, tc.pinned.Identity, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if tc.directory != nil {
				dir.set(onlinePeer(tc.directory.Identity))
			}
			rec := &recorder{}
			pv, err := app.NewPeerVerifier(trust, dir, memory.NewRealClock(), rec)
			if err != nil {
				t.Fatal(err)
			}
			err = pv.VerifyPeer(ctx, tc.presented.Identity)
			if !tc.check(err) {
				t.Fatalf("VerifyPeer = %v", err)
			}
			c, gerr := trust.Get(ctx, tc.presented.Name())
			pinned := gerr == nil && c.Identity.SameKey(tc.presented.PublicKey())
			if pinned != tc.pins {
				t.Fatalf("presented key pinned = %v, want %v", pinned, tc.pins)
			}
		})
	}
	_ = me
}

func TestDiscoverPeersFollowsPresence(t *testing.T) {
	w := newWorld(t)
	d, err := app.NewDiscoverPeers(w.me, w.dir, w.trust, w.verify, w.events, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	came := make(chan domain.Username, 8)
	run(t, func(ctx context.Context) { d.Watch(ctx, func(p domain.Peer) { came <- p.Name() }) })
	w.dir.events <- ports.DirectoryEvent{Kind: ports.Connected}
	w.dir.events <- ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: onlinePeer(w.bob.Identity)}
	select {
	case n := <-came:
		if !n.Equal(w.bob.Name()) {
			t.Fatalf("came online: %s", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no online callback")
	}
	waitFor(t, "bob listed online", func() bool {
		views, err := d.Handle(context.Background(), app.DiscoverPeersInput{})
		return err == nil && len(views) == 1 && views[0].Peer.Online
	})
	offline := onlinePeer(w.bob.Identity)
	offline.Online = false
	w.dir.events <- ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: offline}
	waitFor(t, "bob listed offline", func() bool {
		views, err := d.Handle(context.Background(), app.DiscoverPeersInput{})
		return err == nil && len(views) == 1 && !views[0].Peer.Online
	})
	waitFor(t, "presence and status events", func() bool {
		var presence, status int
		for _, e := range w.events.all() {
			switch e.(type) {
			case ports.PresenceEvent:
				presence++
			case ports.DirectoryStatusEvent:
				status++
			}
		}
		return presence == 2 && status == 1
	})
}

// transferWorld adds the receiving side of file transfers to a world.
type transferWorld struct {
	*world
	receive *app.ReceiveFile
	accept  *app.AcceptTransfer
}

func newTransferWorld(t *testing.T, limit app.MaxIncomingSize) *transferWorld {
	w := newWorld(t)
	rf, err := app.NewReceiveFile(w.me, w.downloads, w.transfers, w.clock, w.events)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := app.NewAcceptTransfer(w.downloads, w.link, w.transfers, w.verify, w.clock, w.events, limit)
	if err != nil {
		t.Fatal(err)
	}
	return &transferWorld{world: w, receive: rf, accept: acc}
}

func (w *transferWorld) offer(t *testing.T, name string, content []byte) domain.TransferID {
	t.Helper()
	id := domain.NewTransferID()
	env := ports.Envelope{Kind: ports.KindOffer, TransferID: id, Manifest: domain.Manifest{Name: name,
		Files: []domain.FileEntry{{Path: name, Size: int64(len(content))}}}} // hashed while sent
	tr, isNew, err := w.receive.Handle(context.Background(), app.ReceiveFileInput{From: w.bob.Identity, Envelope: env})
	if err != nil || !isNew || tr.State() != domain.TransferOffered {
		t.Fatalf("offer: %v, new %v, state %v", err, isNew, tr.State())
	}
	return id
}

func (w *transferWorld) state(t *testing.T, id domain.TransferID) domain.Transfer {
	tr, err := w.transfers.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestReceiveFileVerifiesResumesAndRefuses(t *testing.T) {
	ctx := context.Background()
	// Two chunks and a bit: a resume starts at a chunk boundary.
	content := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog. "), 2*domain.HashChunkSize/45+3)
	w := newTransferWorld(t, 0)
	id := w.offer(t, "../../etc/fox.txt", content)
	if _, err := w.receive.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, domain.FileHashSHA256); err == nil {
		t.Fatal("a stream for an offer not accepted yet was let in")
	}
	if err := w.accept.Handle(ctx, app.AcceptTransferInput{ID: id}); err != nil {
		t.Fatal(err)
	}
	if a := w.link.envelopes(ports.KindAccept); len(a) != 1 || a[0].Env.TransferID != id {
		t.Fatalf("accept envelopes: %v", a)
	}
	eve := mkLocal(t, "eve")
	if _, err := w.receive.Incoming(ctx, eve.Identity, id, 0, domain.FilePathUDP, domain.FileHashSHA256); err == nil {
		t.Fatal("a stream from another peer was let in")
	}
	// First attempt: a chunk and a torn bit of the next, then the link breaks.
	f, err := w.receive.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, domain.FileHashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if f.Offset() != 0 {
		t.Fatalf("fresh part offset %d", f.Offset())
	}
	half := domain.HashChunkSize + 1000
	if _, err := f.Write(content[:half]); err != nil {
		t.Fatal(err)
	}
	if err := f.Finish(errors.New("link lost")); err != nil {
		t.Fatal(err)
	}
	if st := w.state(t, id).State(); st != domain.TransferInterrupted {
		t.Fatalf("after a lost link: %v", st)
	}
	if part, ok := w.downloads.part(id, "fox.txt"); !ok || !bytes.Equal(part, content[:half]) {
		t.Fatalf("part kept for resume: %q, %v (a peer's path must be reduced to its base name)", part, ok)
	}
	// Resume: the receiver says what it has, up to its last whole chunk.
	f, err = w.receive.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, domain.FileHashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if f.Offset() != domain.HashChunkSize || f.PrefixHash() != fileHash(content[:domain.HashChunkSize]) {
		t.Fatalf("resume at %d with prefix hash %x", f.Offset(), f.PrefixHash())
	}
	if part, _ := w.downloads.part(id, "fox.txt"); len(part) != domain.HashChunkSize {
		t.Fatalf("the torn tail was not cut: part of %d bytes", len(part))
	}
	if _, err := f.Write(content[domain.HashChunkSize:]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, ports.ErrIntegrity) {
		t.Fatalf("a byte more than offered: err = %v", err)
	}
	f.SourceHash(fileHash(content))
	if err := f.Finish(nil); err != nil {
		t.Fatal(err)
	}
	if tr := w.state(t, id); tr.State() != domain.TransferCompleted || tr.Done() != int64(len(content)) {
		t.Fatalf("after the last byte: %v, %d bytes", tr.State(), tr.Done())
	}
	if got := w.downloads.committed["fox.txt"]; !bytes.Equal(got, content) {
		t.Fatalf("committed %d bytes", len(got))
	}

	// A file whose bytes differ from the offer never gets its final name.
	id2 := w.offer(t, "other.txt", content)
	if err := w.accept.Handle(ctx, app.AcceptTransferInput{ID: id2}); err != nil {
		t.Fatal(err)
	}
	f, err = w.receive.Incoming(ctx, w.bob.Identity, id2, 0, domain.FilePathUDP, domain.FileHashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), content...)
	bad[3] ^= 1
	if _, err := f.Write(bad); err != nil {
		t.Fatal(err)
	}
	f.SourceHash(fileHash(content)) // what the sender read
	if err := f.Finish(nil); !errors.Is(err, ports.ErrIntegrity) {
		t.Fatalf("finish with wrong bytes: err = %v", err)
	}
	if _, ok := w.downloads.committed["other.txt"]; ok {
		t.Fatal("a corrupt file got its final name")
	}
	if st := w.state(t, id2).State(); st != domain.TransferFailed {
		t.Fatalf("after an integrity failure: %v", st)
	}
}

func TestAcceptTransferChecksSizeAndSpace(t *testing.T) {
	ctx := context.Background()
	content := make([]byte, 1000)
	tests := []struct {
		name  string
		limit app.MaxIncomingSize
		free  int64
		ok    bool
	}{
		{"fits", 0, 1 << 20, true},
		{"over the limit", 999, 1 << 20, false},
		{"at the limit", 1000, 1 << 20, true},
		{"no space", 0, 999, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newTransferWorld(t, tc.limit)
			w.downloads.free = tc.free
			id := w.offer(t, "f.bin", content)
			err := w.accept.Handle(ctx, app.AcceptTransferInput{ID: id})
			if tc.ok != (err == nil) {
				t.Fatalf("accept err = %v", err)
			}
			want := domain.TransferAccepted
			if !tc.ok {
				want = domain.TransferOffered // the user may free space and accept again
				if tc.limit > 0 {
					want = domain.TransferDeclined // the limit does not change: the sender is told at once
				}
				if !errors.Is(err, domain.ErrTooLarge) {
					t.Fatalf("err = %v, want ErrTooLarge", err)
				}
			}
			if st := w.state(t, id).State(); st != want {
				t.Fatalf("state %v, want %v", st, want)
			}
		})
	}
}

func TestSearchHistory(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for _, text := range []string{"lunch at noon", "dinner at eight", "noon works"} {
		if _, err := w.send.Handle(ctx, app.SendMessageInput{To: w.bob.Name(), Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := app.NewSearchHistory(w.messages)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Search(ctx, app.SearchHistoryInput{Query: "noon"})
	if err != nil || len(got) != 2 || got[0].Body() != "noon works" {
		t.Fatalf("search = %v, %v", got, err)
	}
	h, err := s.History(ctx, app.SearchHistoryInput{With: w.bob.Name(), Limit: 2})
	if err != nil || len(h) != 2 || h[1].Body() != "noon works" {
		t.Fatalf("history = %v, %v", h, err)
	}
}

func TestReceiveMessageFilesAFutureTimeAtArrival(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	future := time.Now().Add(24 * time.Hour)
	for _, env := range []ports.Envelope{
		{Kind: ports.KindChat, MessageID: domain.NewMessageID(), SentAt: past, Body: "an hour ago"},
		{Kind: ports.KindChat, MessageID: domain.NewMessageID(), SentAt: future, Body: "from tomorrow"},
	} {
		if err := w.receive.Handle(ctx, app.ReceiveMessageInput{From: w.bob.Identity, Envelope: env}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := w.messages.History(ctx, w.bob.Name(), time.Time{}, 10)
	if err != nil || len(h) != 2 {
		t.Fatalf("history = %v, %v", h, err)
	}
	if !h[0].SentAt().Equal(past) {
		t.Errorf("a past time is kept: %v, want %v", h[0].SentAt(), past)
	}
	if h[1].SentAt().After(time.Now()) {
		t.Errorf("a future time is filed at arrival, got %v", h[1].SentAt())
	}
}

// fileHash is the file hash of b (domain.FileHasher, SHA-256 chunks).
func fileHash(b []byte) [32]byte { return fileHashOf(domain.FileHashSHA256, b) }

func fileHashOf(alg domain.FileHashAlg, b []byte) [32]byte {
	h := domain.NewFileHasher(alg)
	h.Write(b)
	return h.Sum()
}

// A part begun by a stream of one chunk hash is resumed by a stream of the
// other: the hash state kept at the interruption is of the wrong kind, so
// the part is hashed again under the new stream's algorithm (never its
// state reused), and the file is verified under that one.
func TestReceiveFileResumesAcrossTheFileHash(t *testing.T) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("0123456789abcdef"), (3*domain.HashChunkSize+999)/16)
	for _, tc := range []struct{ first, then domain.FileHashAlg }{
		{domain.FileHashSHA256, domain.FileHashBLAKE3},
		{domain.FileHashBLAKE3, domain.FileHashSHA256},
	} {
		w := newTransferWorld(t, 0)
		id := w.offer(t, "across.bin", content)
		if err := w.accept.Handle(ctx, app.AcceptTransferInput{ID: id}); err != nil {
			t.Fatal(err)
		}
		f, err := w.receive.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, tc.first)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(content[:2*domain.HashChunkSize+77]); err != nil {
			t.Fatal(err)
		}
		if err := f.Finish(errors.New("link lost")); err != nil { // keeps a tc.first state at 2 chunks
			t.Fatal(err)
		}
		f, err = w.receive.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, tc.then)
		if err != nil {
			t.Fatal(err)
		}
		prefix := content[:2*domain.HashChunkSize]
		if f.Offset() != int64(len(prefix)) || f.PrefixHash() != fileHashOf(tc.then, prefix) {
			t.Fatalf("%v after %v: resume at %d with prefix %x, want %d with the %v hash %x",
				tc.then, tc.first, f.Offset(), f.PrefixHash(), len(prefix), tc.then, fileHashOf(tc.then, prefix))
		}
		if _, err := f.Write(content[len(prefix):]); err != nil {
			t.Fatal(err)
		}
		f.SourceHash(fileHashOf(tc.then, content))
		if err := f.Finish(nil); err != nil {
			t.Fatalf("%v after %v: %v", tc.then, tc.first, err)
		}
		if got := w.downloads.committed["across.bin"]; !bytes.Equal(got, content) {
			t.Fatalf("committed %d bytes, want the %d sent", len(got), len(content))
		}
	}
}

// An offer's non-zero hash field is the chunked SHA-256 whatever the
// stream hashes with: a BLAKE3 stream's file is checked against both.
func TestReceiveFileChecksTheOfferedSHA256UnderABLAKE3Stream(t *testing.T) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("offered "), domain.HashChunkSize/8+100) // a chunk and 800 bytes
	for _, tc := range []struct {
		name    string
		offered [32]byte
		ok      bool
	}{
		{"the offer's SHA-256 matches", fileHash(content), true},
		{"the offer's SHA-256 differs", fileHash(content[1:]), false},
		{"a BLAKE3 hash in the offer is no SHA-256", fileHashOf(domain.FileHashBLAKE3, content), false},
	} {
		w := newTransferWorld(t, 0)
		id := domain.NewTransferID()
		env := ports.Envelope{Kind: ports.KindOffer, TransferID: id, Manifest: domain.Manifest{Name: "o.bin",
			Files: []domain.FileEntry{{Path: "o.bin", Size: int64(len(content)), Hash: tc.offered}}}}
		if _, _, err := w.receive.Handle(ctx, app.ReceiveFileInput{From: w.bob.Identity, Envelope: env}); err != nil {
			t.Fatal(err)
		}
		if err := w.accept.Handle(ctx, app.AcceptTransferInput{ID: id}); err != nil {
			t.Fatal(err)
		}
		// A resumed part, so the offer's hash covers bytes of two streams.
		f, err := w.receive.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, domain.FileHashBLAKE3)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(content[:domain.HashChunkSize+3]); err != nil {
			t.Fatal(err)
		}
		_ = f.Finish(errors.New("link lost"))
		if f, err = w.receive.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, domain.FileHashBLAKE3); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(content[f.Offset():]); err != nil {
			t.Fatal(err)
		}
		f.SourceHash(fileHashOf(domain.FileHashBLAKE3, content))
		err = f.Finish(nil)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ports.ErrIntegrity)) {
			t.Fatalf("%s: Finish = %v", tc.name, err)
		}
		if _, got := w.downloads.committed["o.bin"]; got != tc.ok {
			t.Fatalf("%s: committed %v", tc.name, got)
		}
	}
}

// TestReceiveFileResumesAfterARestart: a receiver started again (nothing
// kept in memory) reads its part once, cuts the torn tail at the last
// chunk boundary, and the resumed file is verified against the sender's
// hash like any other.
func TestReceiveFileResumesAfterARestart(t *testing.T) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("0123456789abcdef"), (3*domain.HashChunkSize+999)/16)
	w := newTransferWorld(t, 0)
	id := w.offer(t, "big.bin", content)
	if err := w.accept.Handle(ctx, app.AcceptTransferInput{ID: id}); err != nil {
		t.Fatal(err)
	}
	f, err := w.receive.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, domain.FileHashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	cut := 2*domain.HashChunkSize + 12345
	if _, err := f.Write(content[:cut]); err != nil {
		t.Fatal(err)
	}
	if err := f.Finish(errors.New("crash")); err != nil {
		t.Fatal(err)
	}
	again, err := app.NewReceiveFile(w.me, w.downloads, w.transfers, w.clock, w.events)
	if err != nil {
		t.Fatal(err)
	}
	f, err = again.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, domain.FileHashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if f.Offset() != 2*domain.HashChunkSize || f.PrefixHash() != fileHash(content[:2*domain.HashChunkSize]) {
		t.Fatalf("resume at %d with prefix hash %x, want the last chunk boundary", f.Offset(), f.PrefixHash())
	}
	if _, err := f.Write(content[f.Offset():]); err != nil {
		t.Fatal(err)
	}
	f.SourceHash(fileHash(content))
	if err := f.Finish(nil); err != nil {
		t.Fatal(err)
	}
	if got := w.downloads.committed["big.bin"]; !bytes.Equal(got, content) {
		t.Fatalf("committed %d bytes, want the %d sent", len(got), len(content))
	}
	// The sender did not hear it: a stream for the same file now says the
	// file is there already and takes nothing.
	f, err = again.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, domain.FileHashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := f.(ports.CommittedFile); !ok || !c.Committed() {
		t.Fatalf("a stream for a committed file got %T, want a ports.CommittedFile", f)
	}
}

// A stream that wrote every byte of a file and broke before its hash was
// checked (superseded by the sender's newer stream, in the soak) left the
// transfer's progress at the whole file. The next stream must resume the
// complete part — get the hash, check it, commit — not be told the file
// is committed already: the sender would report it done while it never
// got its name here.
func TestAFileWhollyWrittenButNotCommittedIsResumedNotReportedDone(t *testing.T) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("every byte but not the hash. "), 2*domain.HashChunkSize/29+5)
	w := newTransferWorld(t, 0)
	id := w.offer(t, "whole.txt", content)
	if err := w.accept.Handle(ctx, app.AcceptTransferInput{ID: id}); err != nil {
		t.Fatal(err)
	}
	f, err := w.receive.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, domain.FileHashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Finish(errors.New("a newer stream took this file over")); err != nil {
		t.Fatal(err)
	}
	if tr := w.state(t, id); tr.State() != domain.TransferInterrupted || tr.Done() != int64(len(content)) {
		t.Fatalf("after the broken stream: %v at %d bytes", tr.State(), tr.Done())
	}
	f, err = w.receive.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, domain.FileHashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := f.(ports.CommittedFile); ok && c.Committed() {
		t.Fatal("a file never checked nor committed is reported committed")
	}
	if f.Offset() != int64(len(content)) {
		t.Fatalf("resume at %d, want the whole part (%d)", f.Offset(), len(content))
	}
	f.SourceHash(fileHash(content))
	if err := f.Finish(nil); err != nil {
		t.Fatal(err)
	}
	if tr := w.state(t, id); tr.State() != domain.TransferCompleted {
		t.Fatalf("after the resumed stream: %v", tr.State())
	}
	if got := w.downloads.committed["whole.txt"]; !bytes.Equal(got, content) {
		t.Fatalf("committed %d bytes, want %d", len(got), len(content))
	}
	// Once committed, a stream is told so.
	f, err = w.receive.Incoming(ctx, w.bob.Identity, id, 0, domain.FilePathUDP, domain.FileHashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := f.(ports.CommittedFile); !ok || !c.Committed() {
		t.Fatal("a committed file is not reported committed")
	}
	_ = f.Finish(nil)
}
