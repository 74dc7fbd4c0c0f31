package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// strict turns a node's message requests on (the harness accepts from
// anyone for the other use-cases' tests).
func (n *node) strict() *node {
	n.opts.AcceptFromAnyone = false
	return n
}

func incoming(msgs []domain.Message) []string {
	var out []string
	for _, m := range msgs {
		if m.Direction() == domain.Incoming {
			out = append(out, m.Body())
		}
	}
	return out
}

func TestContactsStrangerMessagesAreARequestUntilAccepted(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice").strict(), c.newNode("bob").strict()
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()

	var want []string
	for i := range 5 {
		body := fmt.Sprintf("hi alice, it is bob #%d", i)
		if _, err := bob.client.Send(ctx, alice.me.Name(), body); err != nil {
			t.Fatal(err)
		}
		want = append(want, body)
	}
	// Held, and acknowledged: bob's messages read delivered.
	eventually(t, "bob's messages delivered", func() bool { return delivered(t, bob, alice) == len(want) })
	if h := incoming(alice.history(bob)); len(h) != 0 {
		t.Fatalf("a stranger's messages reached the history before the request was accepted: %q", h)
	}
	reqs, err := alice.client.Requests(ctx)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("Requests: %+v (%v), want one from bob", reqs, err)
	}
	r := reqs[0]
	if !r.Request.From.Name().Equal(bob.me.Name()) || r.Request.Items != 5 || r.Preview != want[0] ||
		r.Request.From.Fingerprint() != bob.me.Fingerprint() {
		t.Fatalf("request %+v, want bob's 5 messages with his fingerprint", r)
	}
	if _, err := memory.WaitForEvent(alice.events, e2eTimeout, func(e ports.RequestEvent) bool {
		return e.Request.Request.From.Name().Equal(bob.me.Name())
	}); err != nil {
		t.Fatalf("no request event: %v", err)
	}
	peers, _ := alice.client.Peers(ctx)
	for _, p := range peers {
		if p.Peer.Name().Equal(bob.me.Name()) && p.Contact {
			t.Fatal("bob is listed as a contact before alice accepted")
		}
	}

	from := alice.events.Len()
	if err := alice.client.AcceptRequest(ctx, bob.me.Name()); err != nil {
		t.Fatal(err)
	}
	if got := incoming(alice.history(bob)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after accepting, history %q, want %q in order", got, want)
	}
	// The events reach the recorder through the subscription: wait for them.
	var got []string
	eventually(t, "a message event per held message", func() bool {
		got = got[:0]
		for _, e := range alice.events.Events()[from:] {
			if m, ok := e.(ports.MessageEvent); ok && m.Message.From().Equal(bob.me.Name()) {
				got = append(got, m.Message.Body())
			}
		}
		return len(got) >= len(want)
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("message events on accept %q, want %q in order", got, want)
	}
	if reqs, _ := alice.client.Requests(ctx); len(reqs) != 0 {
		t.Fatalf("requests after accepting: %+v", reqs)
	}
	cs, err := alice.client.Contacts(ctx)
	if err != nil || len(cs) != 1 || !cs[0].Identity.Name().Equal(bob.me.Name()) {
		t.Fatalf("contacts after accepting: %+v (%v)", cs, err)
	}
	// A contact's messages go straight to the history.
	if _, err := bob.client.Send(ctx, alice.me.Name(), "now we are contacts"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a contact's message in the history", func() bool { return len(incoming(alice.history(bob))) == len(want)+1 })
	// bob wrote first: alice is his contact.
	if cs, _ := bob.client.Contacts(ctx); len(cs) != 1 || !cs[0].Identity.Name().Equal(alice.me.Name()) {
		t.Fatalf("bob's contacts: %+v, want alice (he wrote to her)", cs)
	}
}

func TestContactsDeclineDropsAndBlockRefusesTheKey(t *testing.T) {
	c := newCluster(t)
	alice, bob, eve := c.newNode("alice").strict(), c.newNode("bob").strict(), c.newNode("eve").strict()
	alice.mustStart()
	bob.mustStart()
	eve.mustStart()
	alice.waitPresence(bob, true)
	alice.waitPresence(eve, true)
	ctx := context.Background()

	if _, err := bob.client.Send(ctx, alice.me.Name(), "buy my stuff"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's request", func() bool { r, _ := alice.client.Requests(ctx); return len(r) == 1 })
	if err := alice.client.DeclineRequest(ctx, bob.me.Name()); err != nil {
		t.Fatal(err)
	}
	if r, _ := alice.client.Requests(ctx); len(r) != 0 {
		t.Fatalf("requests after declining: %+v", r)
	}
	if err := alice.client.DeclineRequest(ctx, bob.me.Name()); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("declining again: %v, want ErrNotFound", err)
	}

	if _, err := eve.client.Send(ctx, alice.me.Name(), "hello"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "eve's request", func() bool { r, _ := alice.client.Requests(ctx); return len(r) == 1 })
	if err := alice.client.Block(ctx, eve.me.Name()); err != nil {
		t.Fatal(err)
	}
	if r, _ := alice.client.Requests(ctx); len(r) != 0 {
		t.Fatalf("requests after blocking: %+v", r)
	}
	// The link adapters refuse the key at the handshake.
	pv, err := app.NewPeerVerifier(alice.trust, alice.dir, memory.NewRealClock(), alice.events)
	if err != nil {
		t.Fatal(err)
	}
	if err := pv.VerifyPeer(ctx, eve.me.Identity); !errors.Is(err, app.ErrBlocked) {
		t.Fatalf("VerifyPeer of a blocked key: %v, want ErrBlocked", err)
	}
	// eve writes on, and nothing arrives; her messages stay hers (not delivered).
	m, err := eve.client.Send(ctx, alice.me.Name(), "let me in")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.client.Send(ctx, alice.me.Name(), "sorry, a real question"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's second request", func() bool { r, _ := alice.client.Requests(ctx); return len(r) == 1 })
	if r, _ := alice.client.Requests(ctx); !r[0].Request.From.Name().Equal(bob.me.Name()) {
		t.Fatalf("a request from %s; only bob's may come", r[0].Request.From.Name())
	}
	for _, h := range eve.history(alice) {
		if h.ID() == m.ID() && h.State() == domain.MessageDelivered {
			t.Fatal("a blocked peer's message was acknowledged")
		}
	}
	if _, err := alice.client.Send(ctx, eve.me.Name(), "hi"); !errors.Is(err, app.ErrBlocked) {
		t.Fatalf("writing to a blocked peer: %v, want ErrBlocked", err)
	}
	if err := alice.client.Unblock(ctx, eve.me.Name()); err != nil {
		t.Fatal(err)
	}
	if err := pv.VerifyPeer(ctx, eve.me.Identity); err != nil {
		t.Fatalf("VerifyPeer after unblocking: %v", err)
	}
	// Unblocked is a stranger again: eve's retried message is a request.
	eventually(t, "eve's retried message held", func() bool {
		r, _ := alice.client.Requests(ctx)
		for _, x := range r {
			if x.Request.From.Name().Equal(eve.me.Name()) {
				return true
			}
		}
		return false
	})
}

func TestContactsStrangerOffersAreNotAutoAccepted(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice").strict(), c.newNode("bob").strict()
	alice.opts.AutoAccept = true
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	bob.local.Put("/tmp/photo.jpg", []byte("a photo of a cat"))
	tr, err := bob.client.SendFile(ctx, alice.me.Name(), "/tmp/photo.jpg")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's offer held", func() bool {
		r, _ := alice.client.Requests(ctx)
		return len(r) == 1 && r[0].Request.Offers == 1
	})
	if ts, _ := alice.client.Transfers(ctx); len(ts) != 0 {
		t.Fatalf("a stranger's offer reached the transfers: %v", ts)
	}
	if err := alice.client.AcceptRequest(ctx, bob.me.Name()); err != nil {
		t.Fatal(err)
	}
	// Accepted: the offer is a contact's now, and alice auto-accepts those.
	eventually(t, "the offer completed", func() bool {
		ts, _ := bob.client.Transfers(ctx)
		return len(ts) == 1 && ts[0].ID() == tr.ID() && ts[0].State() == domain.TransferCompleted
	})
}

func TestContactsOverTheRateLimitLosesNothing(t *testing.T) {
	const count = 300
	c := newCluster(t)
	alice, bob := c.newNode("alice").strict(), c.newNode("bob").strict()
	alice.opts.ContactQuota = app.Quota{Rate: 100, Burst: 20, BytesPerDay: 1 << 30}
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	bob.waitPresence(alice, true)
	ctx := context.Background()
	if err := alice.client.AddContact(ctx, bob.me.Name()); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range count {
		body := fmt.Sprintf("burst #%03d", i)
		if _, err := bob.client.Send(ctx, alice.me.Name(), body); err != nil {
			t.Fatal(err)
		}
		want = append(want, body)
	}
	eventually(t, "every message delivered", func() bool { return delivered(t, bob, alice) == count })
	checkConversation(t, bob, alice, want)
	// bob was told to slow down (it is how nothing was lost).
	if _, err := memory.WaitForEvent(bob.events, e2eTimeout, func(e ports.RefusedEvent) bool {
		return e.Peer.Equal(alice.me.Name()) && e.Reason == ports.RefusedSlowDown && e.RetryAfter > 0
	}); err != nil {
		t.Fatalf("bob was never told to slow down: %v", err)
	}
}

func TestContactsQuarantineSurvivesARestart(t *testing.T) {
	// The memory stores outlive a restart of the client like a profile on disk.
	c := newCluster(t)
	alice, bob := c.newNode("alice").strict(), c.newNode("bob").strict()
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	if _, err := bob.client.Send(ctx, alice.me.Name(), "remember me"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "held", func() bool { r, _ := alice.client.Requests(ctx); return len(r) == 1 })
	alice.stop()
	alice.mustStart()
	r, err := alice.client.Requests(ctx)
	if err != nil || len(r) != 1 || r[0].Preview != "remember me" {
		t.Fatalf("requests after a restart: %+v (%v)", r, err)
	}
}

// A stranger cannot bring us into a group (its messages would skip the
// requests); once it is a contact, its group reaches us.
func TestContactsStrangerCannotAddUsToAGroup(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob").strict()
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()

	g, err := alice.client.CreateGroup(ctx, "team", []domain.Username{bob.me.Name()})
	if err != nil {
		t.Fatal(err)
	}
	// The link keeps alice's order: once her chat is a request at bob's,
	// the group's log before it was handled too.
	if _, err := alice.client.Send(ctx, bob.me.Name(), "hello"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "alice's request at bob's", func() bool {
		reqs, err := bob.client.Requests(ctx)
		return err == nil && len(reqs) == 1
	})
	if _, known := bob.groupState(g.ID()); known {
		t.Fatal("a stranger's group reached bob")
	}

	if err := bob.client.AddContact(ctx, alice.me.Name()); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.client.SendGroup(ctx, g.ID(), "now as a contact"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the group and its message at bob's", func() bool {
		_, known := bob.groupState(g.ID())
		return known && len(bob.groupHistory(g.ID())) == 1
	})
}

// Writing through the pipelined path (JSON-RPC sends) makes the peer a
// contact like Send does: its answers are not held as a request.
func TestContactsStartSendMakesAContact(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice").strict(), c.newNode("bob").strict()
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	ctx := context.Background()
	wait, err := alice.client.StartSend(ctx, bob.me.Name(), "hi bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.client.Send(ctx, alice.me.Name(), "hi alice"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's answer in alice's history", func() bool { return len(incoming(alice.history(bob))) == 1 })
	if reqs, err := alice.client.Requests(ctx); err != nil || len(reqs) != 0 {
		t.Fatalf("alice holds requests %+v (%v): bob, whom she wrote to, is a stranger to her", reqs, err)
	}
}
