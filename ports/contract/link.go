package contract

// The MessageLink suite. Run it from an adapter's tests:
//
//	func TestLinkContract(t *testing.T) {
//		contract.MessageLink(t, func(t *testing.T) contract.LinkFactory {
//			// one network per subtest: every end made by the factory
//			// must be able to reach the others
//			return func(t *testing.T, me domain.LocalIdentity, v ports.PeerVerifier) contract.LinkEnd {
//				l, cleanup, err := tcp.NewLink(me, v, nil, tcp.Config{ListenAddr: "127.0.0.1:0"}, nil)
//				if err != nil { t.Fatal(err) }
//				t.Cleanup(cleanup)
//				return contract.LinkEnd{Me: me, Link: l, Close: cleanup}
//			}
//		})
//	}
//
// The suite starts Serve on every end itself and checks that it returns nil
// when its context is cancelled.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// LinkEnd is one MessageLink under test and the identity it was built for.
type LinkEnd struct {
	Me   domain.LocalIdentity
	Link ports.MessageLink
	// Close stops the link for good: afterwards nothing answers at its
	// endpoints. It must be safe to call more than once (the factory also
	// registers it with t.Cleanup).
	Close func()
}

// Peer is how the other ends address this one.
func (e LinkEnd) Peer() domain.Peer {
	return domain.Peer{Identity: e.Me.Identity, Online: true, Endpoints: domain.Endpoints{Link: e.Link.Endpoints()}}
}

// LinkFactory builds a new link for me, checking peers with verifier.
type LinkFactory func(t *testing.T, me domain.LocalIdentity, verifier ports.PeerVerifier) LinkEnd

// LinkVerifierFunc adapts a function to ports.PeerVerifier.
type LinkVerifierFunc func(ctx context.Context, presented domain.Identity) error

// VerifyPeer calls f.
func (f LinkVerifierFunc) VerifyPeer(ctx context.Context, presented domain.Identity) error {
	return f(ctx, presented)
}

var linkAcceptAll = LinkVerifierFunc(func(context.Context, domain.Identity) error { return nil })

// linkWait bounds every wait of the suite; generous for a loaded machine.
const linkWait = 30 * time.Second

// MessageLink checks the promises of ports.MessageLink. newNet is called
// once per subtest and returns the factory of that subtest's ends.
func MessageLink(t *testing.T, newNet func(t *testing.T) LinkFactory) {
	t.Run("delivers chats in order with the sender's identity", func(t *testing.T) {
		newEnd := newNet(t)
		a, b := newEnd(t, linkIdentity(t, "alice"), linkAcceptAll), newEnd(t, linkIdentity(t, "bob"), linkAcceptAll)
		linkServe(t, a, &LinkRecorder{})
		rb := linkServe(t, b, &LinkRecorder{})
		const n = 500
		for i := range n {
			linkSend(t, a, b.Peer(), ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: fmt.Sprint("m", i)})
		}
		got := rb.WaitN(t, n)
		for i, r := range got {
			if want := fmt.Sprint("m", i); r.Env.Body != want {
				t.Fatalf("envelope %d: body %q, want %q (lost, duplicated or reordered)", i, r.Env.Body, want)
			}
			if !r.From.SameKey(a.Me.PublicKey()) || !r.From.Name().Equal(a.Me.Name()) {
				t.Fatalf("envelope %d from %s, want %s", i, r.From.Name(), a.Me.Name())
			}
		}
	})

	t.Run("every kind round-trips with its fields", func(t *testing.T) {
		newEnd := newNet(t)
		a, b := newEnd(t, linkIdentity(t, "alice"), linkAcceptAll), newEnd(t, linkIdentity(t, "bob"), linkAcceptAll)
		linkServe(t, a, &LinkRecorder{})
		rb := linkServe(t, b, &LinkRecorder{})
		want := LinkSampleEnvelopes()
		for _, env := range want {
			linkSend(t, a, b.Peer(), env)
		}
		got := rb.WaitN(t, len(want))
		for i := range want {
			LinkSameEnvelope(t, got[i].Env, want[i])
		}
	})

	t.Run("both directions at once", func(t *testing.T) {
		newEnd := newNet(t)
		a, b := newEnd(t, linkIdentity(t, "alice"), linkAcceptAll), newEnd(t, linkIdentity(t, "bob"), linkAcceptAll)
		ra := linkServe(t, a, &LinkRecorder{})
		rb := linkServe(t, b, &LinkRecorder{})
		const n = 300
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, p := range []struct{ from, to LinkEnd }{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					env := ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: fmt.Sprint(i)}
					if err := linkSendErr(p.from, p.to.Peer(), env); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, r := range [][]LinkReceived{ra.WaitN(t, n), rb.WaitN(t, n)} {
			for i, e := range r {
				if e.Env.Body != fmt.Sprint(i) {
					t.Fatalf("envelope %d: body %q (lost, duplicated or reordered)", i, e.Env.Body)
				}
			}
		}
	})

	t.Run("a peer presenting another key is refused", func(t *testing.T) {
		newEnd := newNet(t)
		a := newEnd(t, linkIdentity(t, "alice"), linkAcceptAll)
		bob := linkIdentity(t, "bob")
		mallory := newEnd(t, linkIdentity(t, "bob"), linkAcceptAll) // same name, another key
		linkServe(t, a, &LinkRecorder{})
		rm := linkServe(t, mallory, &LinkRecorder{})
		// alice expects bob's key at the address where mallory answers
		fake := domain.Peer{Identity: bob.Identity, Online: true, Endpoints: domain.Endpoints{Link: mallory.Link.Endpoints()}}
		err := a.Link.Send(linkCtx(t), fake, ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: "secret"})
		var kc *domain.KeyChangedError
		if !errors.As(err, &kc) {
			t.Fatalf("Send to a peer presenting another key: %v, want *domain.KeyChangedError", err)
		}
		// A message sent afterwards to mallory under its own key is the
		// first one it receives: the refused one never arrived.
		linkSend(t, a, mallory.Peer(), ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: "hello"})
		if got := rm.WaitN(t, 1); got[0].Env.Body != "hello" {
			t.Fatalf("mallory received %q before the allowed message", got[0].Env.Body)
		}
	})

	t.Run("a peer refused by the verifier gets nothing through", func(t *testing.T) {
		newEnd := newNet(t)
		a := newEnd(t, linkIdentity(t, "alice"), linkAcceptAll)
		c := newEnd(t, linkIdentity(t, "carol"), linkAcceptAll)
		b := newEnd(t, linkIdentity(t, "bob"), LinkVerifierFunc(func(_ context.Context, p domain.Identity) error {
			if p.SameKey(a.Me.PublicKey()) {
				return &domain.KeyChangedError{Name: p.Name(), Old: domain.Fingerprint{1}, New: p.Fingerprint()}
			}
			return nil
		}))
		linkServe(t, a, &LinkRecorder{})
		linkServe(t, c, &LinkRecorder{})
		rb := linkServe(t, b, &LinkRecorder{})
		if err := a.Link.Send(linkCtx(t), b.Peer(), ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: "refused"}); err == nil {
			// nil may mean "queued" on a link the peer then refused:
			// a second send must fail.
			if err := a.Link.Send(linkCtx(t), b.Peer(), ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: "refused"}); err == nil {
				t.Fatal("Send to a peer whose verifier refuses us: nil error twice")
			}
		}
		linkSend(t, c, b.Peer(), ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), Body: "allowed"})
		if got := rb.WaitN(t, 1); got[0].Env.Body != "allowed" || !got[0].From.SameKey(c.Me.PublicKey()) {
			t.Fatalf("bob received %q from %s; the refused peer got through", got[0].Env.Body, got[0].From.Name())
		}
	})

	t.Run("an offline peer is ErrPeerOffline", func(t *testing.T) {
		newEnd := newNet(t)
		a := newEnd(t, linkIdentity(t, "alice"), linkAcceptAll)
		b := newEnd(t, linkIdentity(t, "bob"), linkAcceptAll)
		linkServe(t, a, &LinkRecorder{})
		gone := b.Peer()
		b.Close()
		err := a.Link.Send(linkCtx(t), gone, ports.Envelope{Kind: ports.KindTyping})
		if !errors.Is(err, domain.ErrPeerOffline) {
			t.Fatalf("Send to a closed peer: %v, want domain.ErrPeerOffline", err)
		}
		noEndpoints := domain.Peer{Identity: gone.Identity}
		if err := a.Link.Send(linkCtx(t), noEndpoints, ports.Envelope{Kind: ports.KindTyping}); !errors.Is(err, domain.ErrPeerOffline) {
			t.Fatalf("Send to a peer without endpoints: %v, want domain.ErrPeerOffline", err)
		}
	})

	t.Run("Send honours a cancelled context", func(t *testing.T) {
		newEnd := newNet(t)
		a, b := newEnd(t, linkIdentity(t, "alice"), linkAcceptAll), newEnd(t, linkIdentity(t, "bob"), linkAcceptAll)
		linkServe(t, b, &LinkRecorder{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := a.Link.Send(ctx, b.Peer(), ports.Envelope{Kind: ports.KindTyping}); err == nil {
			// a link that already exists may accept the envelope; there is none here
			t.Fatal("Send with a cancelled context and no link: nil error")
		}
	})

	t.Run("Serve returns nil when its context is cancelled", func(t *testing.T) {
		newEnd := newNet(t)
		a, b := newEnd(t, linkIdentity(t, "alice"), linkAcceptAll), newEnd(t, linkIdentity(t, "bob"), linkAcceptAll)
		linkServe(t, b, &LinkRecorder{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Link.Serve(ctx, &LinkRecorder{}) }()
		// a live link to bob must not keep Serve running
		linkSend(t, a, b.Peer(), ports.Envelope{Kind: ports.KindTyping})
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve after cancel: %v, want nil", err)
			}
		case <-time.After(linkWait):
			t.Fatal("Serve did not return after its context was cancelled")
		}
	})
}

// LinkReceived is one envelope a LinkRecorder got.
type LinkReceived struct {
	From domain.Identity
	Env  ports.Envelope
}

// LinkRecorder is an EnvelopeHandler that keeps what it receives and checks
// that calls for one peer never overlap.
type LinkRecorder struct {
	mu      sync.Mutex
	got     []LinkReceived
	changed chan struct{}
	busy    map[string]bool
	overlap bool
}

// HandleEnvelope records env.
func (r *LinkRecorder) HandleEnvelope(_ context.Context, from domain.Identity, env ports.Envelope) error {
	key := string(from.PublicKey())
	r.mu.Lock()
	if r.busy == nil {
		r.busy = make(map[string]bool)
	}
	if r.busy[key] {
		r.overlap = true
	}
	r.busy[key] = true
	r.mu.Unlock()
	runtime.Gosched() // widen the window in which an overlapping call would be seen

	r.mu.Lock()
	defer r.mu.Unlock()
	r.busy[key] = false
	r.got = append(r.got, LinkReceived{From: from, Env: env})
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	return nil
}

// WaitN waits until exactly n envelopes arrived and returns them; more than
// n, or overlapping calls for one peer, fail the test.
func (r *LinkRecorder) WaitN(t *testing.T, n int) []LinkReceived {
	t.Helper()
	deadline := time.After(linkWait)
	for {
		r.mu.Lock()
		if r.overlap {
			r.mu.Unlock()
			t.Fatal("HandleEnvelope was called concurrently for one peer")
		}
		if len(r.got) > n {
			got := len(r.got)
			r.mu.Unlock()
			t.Fatalf("received %d envelopes, want %d", got, n)
		}
		if len(r.got) == n {
			got := append([]LinkReceived(nil), r.got...)
			r.mu.Unlock()
			return got
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch, have := r.changed, len(r.got)
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("received %d envelopes in %s, want %d", have, linkWait, n)
		}
	}
}

// LinkSampleEnvelopes is one envelope of every kind with every field of
// its kind set.
func LinkSampleEnvelopes() []ports.Envelope {
	sent := time.Date(2026, 11, 24, 21, 0, 0, 123456789, time.UTC)
	tid := domain.NewTransferID()
	m := domain.Manifest{Name: "photos", Files: []domain.FileEntry{
		{Path: "photos/a.jpg", Size: 12345, Hash: [32]byte{1, 2, 3}},
		{Path: "photos/sub/b.png", Size: 0, Hash: [32]byte{31: 9}},
	}}
	return []ports.Envelope{
		{Kind: ports.KindChat, MessageID: domain.NewMessageID(), SentAt: sent, Body: "héllo, wörld ✓"},
		{Kind: ports.KindDelivered, MessageID: domain.NewMessageID()},
		{Kind: ports.KindRead, MessageID: domain.NewMessageID()},
		{Kind: ports.KindTyping},
		{Kind: ports.KindOffer, TransferID: tid, Manifest: m},
		{Kind: ports.KindAccept, TransferID: tid},
		{Kind: ports.KindDecline, TransferID: domain.NewTransferID(), Reason: "no space left"},
		{Kind: ports.KindCancel, TransferID: tid, Reason: "cancelled by the user"},
		{Kind: ports.KindRefused, MessageID: domain.NewMessageID(), Refusal: ports.RefusedSlowDown, RetryAfter: 1500 * time.Millisecond},
		{Kind: ports.KindStatus, Status: domain.Status{Availability: domain.Busy, Text: "in a meeting ☎"}},
	}
}

// LinkSameEnvelope compares the fields meaningful for want's kind.
func LinkSameEnvelope(t *testing.T, got, want ports.Envelope) {
	t.Helper()
	if got.Kind != want.Kind {
		t.Fatalf("kind %d, want %d", got.Kind, want.Kind)
	}
	bad := func(field string, g, w any) { t.Fatalf("kind %d: %s %v, want %v", want.Kind, field, g, w) }
	switch want.Kind {
	case ports.KindChat:
		if got.MessageID != want.MessageID {
			bad("MessageID", got.MessageID, want.MessageID)
		}
		if !got.SentAt.Equal(want.SentAt) {
			bad("SentAt", got.SentAt, want.SentAt)
		}
		if got.Body != want.Body {
			bad("Body", got.Body, want.Body)
		}
	case ports.KindDelivered, ports.KindRead:
		if got.MessageID != want.MessageID {
			bad("MessageID", got.MessageID, want.MessageID)
		}
	case ports.KindOffer:
		if got.TransferID != want.TransferID {
			bad("TransferID", got.TransferID, want.TransferID)
		}
		if !reflect.DeepEqual(got.Manifest, want.Manifest) {
			bad("Manifest", got.Manifest, want.Manifest)
		}
	case ports.KindAccept:
		if got.TransferID != want.TransferID {
			bad("TransferID", got.TransferID, want.TransferID)
		}
	case ports.KindDecline, ports.KindCancel:
		if got.TransferID != want.TransferID {
			bad("TransferID", got.TransferID, want.TransferID)
		}
		if got.Reason != want.Reason {
			bad("Reason", got.Reason, want.Reason)
		}
	case ports.KindRefused:
		if got.MessageID != want.MessageID || got.Refusal != want.Refusal || got.RetryAfter != want.RetryAfter {
			bad("refusal", fmt.Sprint(got.MessageID, got.Refusal, got.RetryAfter), fmt.Sprint(want.MessageID, want.Refusal, want.RetryAfter))
		}
	case ports.KindStatus:
		if got.Status != want.Status {
			bad("Status", got.Status, want.Status)
		}
	}
}

func linkIdentity(t *testing.T, name string) domain.LocalIdentity {
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

func linkCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), linkWait)
	t.Cleanup(cancel)
	return ctx
}

// linkServe runs Serve on e until the test ends, then checks it returned nil.
func linkServe(t *testing.T, e LinkEnd, r *LinkRecorder) *LinkRecorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Link.Serve(ctx, r) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve of %s: %v, want nil after cancel", e.Me.Name(), err)
			}
		case <-time.After(linkWait):
			t.Errorf("Serve of %s did not return after cancel", e.Me.Name())
		}
	})
	return r
}

func linkSend(t *testing.T, from LinkEnd, to domain.Peer, env ports.Envelope) {
	t.Helper()
	if err := from.Link.Send(linkCtx(t), to, env); err != nil {
		t.Fatalf("%s sends kind %d to %s: %v", from.Me.Name(), env.Kind, to.Name(), err)
	}
}

// linkSendErr sends from a goroutine that cannot call t.Fatal.
func linkSendErr(from LinkEnd, to domain.Peer, env ports.Envelope) error {
	ctx, cancel := context.WithTimeout(context.Background(), linkWait)
	defer cancel()
	if err := from.Link.Send(ctx, to, env); err != nil {
		return fmt.Errorf("%s sends to %s: %w", from.Me.Name(), to.Name(), err)
	}
	return nil
}
