package app_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/seal"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// withMailbox gives the cluster's registry a mailbox on store.
func (c *cluster) withMailbox(store ports.MailboxStore, opts app.MailboxOptions) {
	c.t.Helper()
	mb, err := app.NewRegistryMailbox(c.reg, store, memory.NewPrekeyStore(), opts)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mb.Run(ctx) }()
	c.t.Cleanup(func() { cancel(); <-done })
	c.mailbox = mb
}

// waitPrekey waits until n published its mailbox key.
func (c *cluster) waitPrekey(n *node) ports.SignedPrekey {
	c.t.Helper()
	var k ports.SignedPrekey
	eventually(c.t, n.me.Name().String()+" publishes a mailbox key", func() bool {
		var err error
		k, err = c.mailbox.Prekey(context.Background(), n.me.Name())
		return err == nil
	})
	return k
}

// parkedFor counts the unexpired mail parked for n.
func parkedFor(t *testing.T, store ports.MailboxStore, n *node) int {
	t.Helper()
	list, err := store.List(context.Background(), n.me.Name(), time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// stored is n's conversation with peer as its store keeps it (the client
// may be stopped).
func stored(t *testing.T, n, peer *node) []domain.Message {
	t.Helper()
	h, err := n.messages.History(context.Background(), peer.me.Name(), time.Time{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func countState(t *testing.T, from, to *node, st domain.MessageState) int {
	n := 0
	for _, m := range stored(t, from, to) {
		if m.Direction() == domain.Outgoing && m.State() == st {
			n++
		}
	}
	return n
}

// TestE2EMailboxHundredMessagesToAnOfflinePeer: alice writes 100 messages
// to bob, who is offline, and quits; bob starts and gets all 100, in
// order, once; bob's acknowledgements wait in alice's mailbox, and alice,
// started again while bob is away, sees every message delivered.
func TestE2EMailboxHundredMessagesToAnOfflinePeer(t *testing.T) {
	const count = 100
	c := newCluster(t)
	store := memory.NewMailboxStore()
	c.withMailbox(store, app.MailboxOptions{})
	alice, bob := c.newNode("alice"), c.newNode("bob")
	bob.mustStart()
	c.waitPrekey(bob)
	bob.stop()
	alice.mustStart()
	c.waitPrekey(alice)
	var want []string
	for i := range count {
		body := fmt.Sprintf("while you were away #%03d", i)
		if _, err := alice.client.Send(context.Background(), bob.me.Name(), body); err != nil {
			t.Fatal(err)
		}
		want = append(want, body)
	}
	eventually(t, "alice sees all 100 stored in bob's mailbox", func() bool { return countState(t, alice, bob, domain.MessageStored) == count })
	if n := parkedFor(t, store, bob); n != count {
		t.Fatalf("%d mails parked for bob, want %d (each message once)", n, count)
	}
	alice.stop()

	bob.mustStart()
	eventually(t, "bob receives 100", func() bool {
		n := 0
		for _, m := range bob.history(alice) {
			if m.Direction() == domain.Incoming {
				n++
			}
		}
		return n >= count
	})
	eventually(t, "bob's mailbox is emptied and his acknowledgements parked for alice", func() bool {
		return parkedFor(t, store, bob) == 0 && parkedFor(t, store, alice) == count
	})
	bob.stop()
	var got []string
	for _, m := range stored(t, bob, alice) {
		if m.Direction() == domain.Incoming {
			got = append(got, m.Body())
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("bob got %d messages, not the 100 in order once:\n%s", len(got), strings.Join(got, "\n"))
	}

	alice.mustStart()
	eventually(t, "alice, started again, sees all 100 delivered", func() bool { return delivered(t, alice, bob) == count })
	eventually(t, "alice's mailbox is emptied", func() bool { return parkedFor(t, store, alice) == 0 })
}

// TestE2EMailboxExpiryFailsTheMessageWithAReason: mail bob never fetched
// expires at the registry and alice's message turns failed, saying why;
// bob, back later, is told by alice's signed notice.
func TestE2EMailboxExpiryFailsTheMessageWithAReason(t *testing.T) {
	c := newCluster(t)
	store := memory.NewMailboxStore()
	c.withMailbox(store, app.MailboxOptions{SweepInterval: 100 * time.Millisecond})
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.opts.Mail.TTL = 2 * time.Second
	bob.mustStart()
	c.waitPrekey(bob)
	bob.stop()
	alice.mustStart()
	m, err := alice.client.Send(context.Background(), bob.me.Name(), "this one will expire")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := memory.WaitForEvent(alice.events, e2eTimeout, func(e ports.MessageStateEvent) bool {
		return e.ID == m.ID() && e.State == domain.MessageFailed
	})
	if err != nil {
		t.Fatalf("alice never saw the message fail: %v", err)
	}
	if !strings.Contains(ev.Reason, "expired in bob's mailbox") {
		t.Fatalf("failed with reason %q, want it to say the mail expired", ev.Reason)
	}
	// The expired mail is gone; what waits for bob is alice's notice.
	eventually(t, "only alice's expiry notice parked for bob", func() bool {
		list, err := store.List(context.Background(), bob.me.Name(), time.Now(), 0)
		// The notice lives 14 days; the expired mail lived 2 s.
		return err == nil && len(list) == 1 && time.Until(list[0].Expires) > time.Hour
	})
	if n := countState(t, alice, bob, domain.MessageFailed); n != 1 {
		t.Fatalf("%d failed messages in alice's history, want 1", n)
	}
	alice.stop()
	bob.mustStart()
	got, err := memory.WaitForEvent(bob.events, e2eTimeout, func(e ports.MailExpiredEvent) bool { return e.ID == m.ID() })
	if err != nil {
		t.Fatalf("bob was never told that alice's message expired: %v", err)
	}
	if !got.From.Equal(alice.me.Name()) || !got.SentAt.Equal(m.SentAt()) || !strings.Contains(got.Reason, "expired unread") {
		t.Fatalf("bob was told %+v, want alice's message of %s, expired unread", got, m.SentAt())
	}
	bob.stop()
	for _, m := range stored(t, bob, alice) {
		t.Fatalf("bob got %q from expired mail", m.Body())
	}
}

// TestE2EMailboxQuotaRefusesClearlyAndTheSenderKeepsTheMessage.
func TestE2EMailboxQuotaRefusesClearlyAndTheSenderKeepsTheMessage(t *testing.T) {
	c := newCluster(t)
	store := memory.NewMailboxStore()
	c.withMailbox(store, app.MailboxOptions{Quota: ports.MailQuota{Count: 2, Bytes: 1 << 20}})
	alice, bob := c.newNode("alice"), c.newNode("bob")
	bob.mustStart()
	c.waitPrekey(bob)
	bob.stop()
	alice.mustStart()
	var last domain.Message
	for i := range 3 {
		var err error
		if last, err = alice.client.Send(context.Background(), bob.me.Name(), fmt.Sprint("message ", i)); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := memory.WaitForEvent(alice.events, e2eTimeout, func(e ports.MessageStateEvent) bool {
		return e.ID == last.ID() && e.Reason != ""
	})
	if err != nil {
		t.Fatalf("no refusal reported for the third message: %v", err)
	}
	if !strings.Contains(ev.Reason, "bob's mailbox is full") || ev.State == domain.MessageFailed {
		t.Fatalf("refusal %q in state %v, want 'mailbox is full' and the message kept", ev.Reason, ev.State)
	}
	eventually(t, "two stored", func() bool { return countState(t, alice, bob, domain.MessageStored) == 2 })
	if n := countState(t, alice, bob, domain.MessageQueued); n != 1 {
		t.Fatalf("%d queued, want the refused one kept in the outbox", n)
	}
	// Once bob is back, the third goes directly.
	bob.mustStart()
	eventually(t, "all three delivered once bob is online", func() bool { return delivered(t, alice, bob) == 3 })
}

// TestE2EMailboxRefusesTamperedRedirectedAndReplayedMail: the registry (or
// anyone depositing) cannot alter a blob, hand bob's mail to carol, or
// make bob take the same mail twice.
func TestE2EMailboxRefusesTamperedRedirectedAndReplayedMail(t *testing.T) {
	c := newCluster(t)
	store := memory.NewMailboxStore()
	c.withMailbox(store, app.MailboxOptions{})
	alice, bob, carol := c.newNode("alice"), c.newNode("bob"), c.newNode("carol")
	for _, n := range []*node{bob, carol, alice} {
		n.mustStart()
		c.waitPrekey(n)
		n.stop()
	}
	ctx := context.Background()
	bobKey := c.waitPrekey(bob)
	letter := func(body string) []byte {
		l := ports.Letter{From: alice.me.Identity, To: bob.me.Identity, Expires: time.Now().Add(time.Hour).Truncate(time.Second),
			Envelope: ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), SentAt: time.Now().UTC(), Body: body}}
		blob, err := seal.New().Seal(alice.me, bobKey, l)
		if err != nil {
			t.Fatal(err)
		}
		return blob
	}
	good, tampered := letter("the real one"), letter("tampered with")
	tampered[len(tampered)-5] ^= 1
	sess := ports.SessionInfo{Identity: alice.me.Identity}
	for _, d := range []struct {
		to   *node
		blob []byte
	}{{bob, good}, {bob, tampered}, {bob, good}, {carol, good}} {
		if _, err := c.mailbox.Deposit(ctx, sess, d.to.me.Name(), d.blob, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	bob.mustStart()
	carol.mustStart()
	eventually(t, "bob's and carol's mailboxes drained", func() bool {
		return parkedFor(t, store, bob) == 0 && parkedFor(t, store, carol) == 0
	})
	var got []string
	for _, m := range bob.history(alice) {
		got = append(got, m.Body())
	}
	if len(got) != 1 || got[0] != "the real one" {
		t.Fatalf("bob's history with alice: %q, want the real one once", got)
	}
	if h := carol.history(alice); len(h) != 0 {
		t.Fatalf("carol took bob's mail: %q", h[0].Body())
	}
}

// offlineAccepter is a cluster with a mailbox on store, alice and bob;
// bob, who accepts every offer, published his mailbox key and went offline.
func offlineAccepter(t *testing.T) (store *memory.MailboxStore, alice, bob *node) {
	c := newCluster(t)
	store = memory.NewMailboxStore()
	c.withMailbox(store, app.MailboxOptions{})
	alice, bob = c.newNode("alice"), c.newNode("bob")
	bob.opts.AutoAccept = true
	bob.mustStart()
	c.waitPrekey(bob)
	bob.stop()
	return store, alice, bob
}

// TestE2EMailboxFileOfferToAnOfflinePeer: an offer made while bob is
// offline waits in his mailbox; bob sees it when he starts and accepts
// it; the bytes flow once alice is online again.
func TestE2EMailboxFileOfferToAnOfflinePeer(t *testing.T) {
	store, alice, bob := offlineAccepter(t)
	data := randomBytes(t, 300_000)
	alice.local.Put("/home/alice/report.pdf", data)
	alice.mustStart()
	tr, err := alice.client.SendFile(context.Background(), bob.me.Name(), "/home/alice/report.pdf")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the offer is parked in bob's mailbox", func() bool { return parkedFor(t, store, bob) == 1 })
	alice.stop()
	bob.mustStart()
	waitTransfer(t, bob, func(x domain.Transfer) bool { return x.ID() == tr.ID() && x.Direction() == domain.Incoming })
	alice.mustStart()
	waitTransfer(t, bob, inState(tr.ID(), domain.TransferCompleted))
	if b, ok := bob.downloads.File("report.pdf"); !ok || !bytes.Equal(b, data) {
		t.Fatalf("bob's file: %d bytes, ok %v; want the %d bytes alice offered", len(b), ok, len(data))
	}
}

// TestE2EMailboxAnOfferCancelledWhileParkedIsNeverShown: alice offers a
// file to offline bob and cancels it; bob, who accepts everything, finds
// the offer and its cancel in his mailbox together and shows neither.
func TestE2EMailboxAnOfferCancelledWhileParkedIsNeverShown(t *testing.T) {
	store, alice, bob := offlineAccepter(t)
	alice.local.Put("/home/alice/draft.pdf", randomBytes(t, 50_000))
	alice.mustStart()
	tr, err := alice.client.SendFile(context.Background(), bob.me.Name(), "/home/alice/draft.pdf")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the offer is parked in bob's mailbox", func() bool { return parkedFor(t, store, bob) == 1 })
	if err := alice.client.CancelTransfer(context.Background(), tr.ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cancel is parked beside it", func() bool { return parkedFor(t, store, bob) == 2 })
	alice.stop()
	bob.mustStart()
	eventually(t, "bob fetched his mail", func() bool { return parkedFor(t, store, bob) == 0 })
	list, err := bob.client.Transfers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range list {
		if x.ID() == tr.ID() {
			t.Fatalf("bob shows the withdrawn offer, %s", x.State())
		}
	}
}

// TestE2EMailboxAnOfferCancelledAfterItsSenderRestartedIsCancelledAtBoth:
// alice parks an offer for offline bob, restarts (forgetting she parked
// it) and cancels it; bob, back, takes the offer and accepts it, and
// alice's answer tells him it was cancelled.
func TestE2EMailboxAnOfferCancelledAfterItsSenderRestartedIsCancelledAtBoth(t *testing.T) {
	store, alice, bob := offlineAccepter(t)
	alice.local.Put("/home/alice/draft.pdf", randomBytes(t, 50_000))
	alice.mustStart()
	tr, err := alice.client.SendFile(context.Background(), bob.me.Name(), "/home/alice/draft.pdf")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the offer is parked in bob's mailbox", func() bool { return parkedFor(t, store, bob) == 1 })
	alice.stop()
	alice.mustStart()
	if err := alice.client.CancelTransfer(context.Background(), tr.ID()); err != nil {
		t.Fatal(err)
	}
	bob.mustStart()
	waitTransfer(t, bob, inState(tr.ID(), domain.TransferCancelled))
}

// TestE2EMailboxAnUnreachableOnlinePeerGetsMailAfterTheGrace: bob stays
// listed online but cannot be reached; after the grace period alice's
// message goes to his mailbox (stored), and it is delivered once — by
// whichever path — when the network heals.
func TestE2EMailboxAnUnreachableOnlinePeerGetsMailAfterTheGrace(t *testing.T) {
	c := newCluster(t)
	store := memory.NewMailboxStore()
	c.withMailbox(store, app.MailboxOptions{})
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.opts.Mail.Grace = 300 * time.Millisecond
	alice.mustStart()
	bob.mustStart()
	c.waitPrekey(bob)
	alice.waitPresence(bob, true)
	c.net.SetFaults(alice.host, bob.host, memory.Faults{Partition: true})
	m, err := alice.client.Send(context.Background(), bob.me.Name(), "are you there?")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := memory.WaitForEvent(alice.events, e2eTimeout, func(e ports.MessageStateEvent) bool {
		return e.ID == m.ID() && e.State == domain.MessageStored
	}); err != nil {
		t.Fatalf("the message never went to bob's mailbox: %v", err)
	}
	c.net.SetFaults(alice.host, bob.host, memory.Faults{})
	eventually(t, "delivered", func() bool { return delivered(t, alice, bob) == 1 })
	n := 0
	for _, m := range stored(t, bob, alice) {
		if m.Body() == "are you there?" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("bob has the message %d times, want once", n)
	}
}

// TestE2EMailboxKeysRotateAndOldOnesAreDeleted: at start a client whose
// newest mailbox key is older than a week makes and publishes a new one,
// keeps an old key mail may still be sealed to (such mail still opens),
// and deletes a key no unexpired mail can use.
func TestE2EMailboxKeysRotateAndOldOnesAreDeleted(t *testing.T) {
	c := newCluster(t)
	c.withMailbox(memory.NewMailboxStore(), app.MailboxOptions{})
	alice, bob := c.newNode("alice"), c.newNode("bob")
	s := seal.New()
	oldKey := func(id uint32, age time.Duration, deleteIn time.Duration) ports.MailKey {
		pub, priv, err := s.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		created := time.Now().Add(-age).Truncate(time.Second)
		k := ports.SignedPrekey{Name: bob.me.Name(), KeyID: id, Public: pub, Suite: s.Suite(), Created: created, Expires: time.Now().Add(time.Hour).Truncate(time.Second)}
		k.Signature = bob.me.Sign(domain.PrekeySigningBytes(k.Name, bob.me.PublicKey(), k.KeyID, k.Suite, k.Public, k.Created, k.Expires))
		return ports.MailKey{Prekey: k, Private: priv, DeleteAfter: time.Now().Add(deleteIn)}
	}
	ctx := context.Background()
	dead, usable := oldKey(1, 40*24*time.Hour, -time.Minute), oldKey(2, 8*24*time.Hour, time.Hour)
	for _, k := range []ports.MailKey{dead, usable} {
		if err := bob.mailKeys.SaveMailKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	// Mail alice sealed to the week-old key before bob rotated.
	l := ports.Letter{From: alice.me.Identity, To: bob.me.Identity, Expires: time.Now().Add(time.Hour).Truncate(time.Second),
		Envelope: ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), SentAt: time.Now().UTC(), Body: "sealed to last week's key"}}
	blob, err := s.Seal(alice.me, usable.Prekey, l)
	if err != nil {
		t.Fatal(err)
	}
	alice.mustStart() // registers alice, so bob can check her key
	alice.stop()
	bob.mustStart()
	k := c.waitPrekey(bob)
	if k.KeyID == 1 || k.KeyID == 2 || !time.Now().Add(-time.Minute).Before(k.Created) {
		t.Fatalf("published key %d created %v, want a new one", k.KeyID, k.Created)
	}
	if _, err := c.mailbox.Deposit(ctx, ports.SessionInfo{Identity: alice.me.Identity}, bob.me.Name(), blob, time.Hour); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob opens mail sealed to his previous key", func() bool {
		for _, m := range bob.history(alice) {
			if m.Body() == "sealed to last week's key" {
				return true
			}
		}
		return false
	})
	keys, _ := bob.mailKeys.MailKeys(ctx)
	var ids []uint32
	for _, mk := range keys {
		ids = append(ids, mk.Prekey.KeyID)
	}
	if len(ids) != 2 || ids[0] != 2 || ids[1] != k.KeyID {
		t.Fatalf("bob keeps keys %v, want the usable old one (2) and the new one (%d), the dead one deleted", ids, k.KeyID)
	}
}

// TestE2EMailboxALetterNotStoredStaysAtTheRegistry: bob's disk refuses the
// first letter he fetches while alice is away; it and the ones after it
// stay parked and reach him at the next try, all in order, once.
func TestE2EMailboxALetterNotStoredStaysAtTheRegistry(t *testing.T) {
	c := newCluster(t)
	store := memory.NewMailboxStore()
	c.withMailbox(store, app.MailboxOptions{})
	alice, bob := c.newNode("alice"), c.newNode("bob")
	bob.mustStart()
	c.waitPrekey(bob)
	bob.stop()
	alice.mustStart()
	want := []string{"one", "two", "three"}
	for _, body := range want {
		if _, err := alice.client.Send(context.Background(), bob.me.Name(), body); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "three parked for bob", func() bool { return parkedFor(t, store, bob) == len(want) })
	alice.stop() // only the mailbox has them now

	bob.messages.FailIncoming(1)
	bob.mustStart()
	eventually(t, "bob stores all three after the failed try", func() bool { return len(incoming(stored(t, bob, alice))) == len(want) })
	if got := incoming(stored(t, bob, alice)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("bob has %q, want %q in order once", got, want)
	}
	eventually(t, "bob's mailbox emptied", func() bool { return parkedFor(t, store, bob) == 0 })
}
