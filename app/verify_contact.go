package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// VerifyContact is "check that the people I talk to are who they were":
// trust on first use (the first key seen for a name is pinned), a loud
// warning and a block on sending when a known name shows another key, the
// safety number to compare out of band, and the verified mark.
type VerifyContact struct {
	me     domain.LocalIdentity
	trust  ports.TrustStore
	dir    ports.Directory
	clock  ports.Clock
	events ports.EventSink
	roster *roster

	mu      sync.Mutex
	pending map[string]domain.Identity // name key → the other key it presented
	// onAccepted is told when the user accepted a new key (sending resumes).
	onAccepted func(domain.Username)
}

// VerifyContactInput names the contact a verification is about.
type VerifyContactInput struct {
	Name     domain.Username
	Verified bool
}

// NewVerifyContact builds the use-case. roster may be nil: peers are then
// looked up in the directory every time.
func NewVerifyContact(me domain.LocalIdentity, trust ports.TrustStore, dir ports.Directory, clock ports.Clock, events ports.EventSink) (*VerifyContact, error) {
	switch {
	case me.IsZero():
		return nil, errNilPort("identity")
	case trust == nil:
		return nil, errNilPort("trust store")
	case dir == nil:
		return nil, errNilPort("directory")
	case clock == nil:
		return nil, errNilPort("clock")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	return &VerifyContact{me: me, trust: trust, dir: dir, clock: clock, events: events,
		roster: newRoster(), pending: make(map[string]domain.Identity)}, nil
}

// Observe checks an identity seen for a name (in the directory or on a
// link) against the pin. It pins nothing: pinning happens on first contact.
// A different key is recorded as a pending change, announced with a
// KeyChangedEvent and returned as *domain.KeyChangedError.
func (v *VerifyContact) Observe(ctx context.Context, seen domain.Identity) error {
	c, err := v.trust.Get(ctx, seen.Name())
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("trust lookup %s: %w", seen.Name(), err)
	}
	if err := c.CheckKey(seen); err != nil {
		v.keyChanged(c.Identity, seen)
		return err
	}
	return nil
}

// keyChanged records that name presented newID instead of pinned.
func (v *VerifyContact) keyChanged(pinned, newID domain.Identity) {
	k := pinned.Name().Key()
	v.mu.Lock()
	prev, had := v.pending[k]
	v.pending[k] = newID
	v.mu.Unlock()
	if had && prev.SameKey(newID.PublicKey()) {
		return // already announced
	}
	slog.Warn("contact key changed: sending blocked until the user accepts it",
		"peer", pinned.Name().String(), "old", pinned.Fingerprint().Short(), "new", newID.Fingerprint().Short())
	v.events.Publish(ports.KeyChangedEvent{Name: pinned.Name(), Old: pinned.Fingerprint(), New: newID.Fingerprint()})
}

// recordKeyChange takes a *domain.KeyChangedError a link reported.
func (v *VerifyContact) recordKeyChange(ctx context.Context, name domain.Username) {
	// The link only tells fingerprints; the directory has the key itself.
	p, err := v.dir.Lookup(ctx, name)
	if err != nil {
		return
	}
	_ = v.Observe(ctx, p.Identity)
}

// Blocked returns *domain.KeyChangedError when a key change for name waits
// for the user's decision.
func (v *VerifyContact) Blocked(ctx context.Context, name domain.Username) error {
	v.mu.Lock()
	newID, ok := v.pending[name.Key()]
	v.mu.Unlock()
	if !ok {
		return nil
	}
	c, err := v.trust.Get(ctx, name)
	if err != nil {
		return &domain.KeyChangedError{Name: name, New: newID.Fingerprint()}
	}
	return &domain.KeyChangedError{Name: name, Old: c.Identity.Fingerprint(), New: newID.Fingerprint()}
}

// lookup finds a peer: the live presence first, the directory second (also
// for a peer the presence last showed offline: it may be a step behind).
func (v *VerifyContact) lookup(ctx context.Context, name domain.Username) (domain.Peer, error) {
	if p, ok := v.roster.get(name); ok && p.Online {
		return p, nil
	}
	p, err := v.dir.Lookup(ctx, name)
	if err != nil {
		return domain.Peer{}, fmt.Errorf("look up %s: %w", name, err)
	}
	return p, nil
}

// Recipient checks that name may be written to: a known name (pinned, or
// found in the directory and then pinned on first use) without a pending key
// change. It does not need the peer to be online.
func (v *VerifyContact) Recipient(ctx context.Context, name domain.Username) error {
	if name.Equal(v.me.Name()) {
		return fmt.Errorf("%w: that is you", domain.ErrUnknownPeer)
	}
	if err := v.Blocked(ctx, name); err != nil {
		return err
	}
	if _, err := v.trust.Get(ctx, name); err == nil {
		// Pinned: check against the key last seen online, if any (no
		// directory round trip; the outbox checks again before writing).
		if p, ok := v.roster.get(name); ok {
			return v.Observe(ctx, p.Identity)
		}
		return nil
	} else if !errors.Is(err, domain.ErrNotFound) {
		return fmt.Errorf("trust lookup %s: %w", name, err)
	}
	p, err := v.lookup(ctx, name)
	if err != nil {
		return err
	}
	return v.pinOrCheck(ctx, p.Identity)
}

// pinOrCheck pins id on first use or checks it against the pin.
func (v *VerifyContact) pinOrCheck(ctx context.Context, id domain.Identity) error {
	err := v.trust.Pin(ctx, id, v.clock.Now())
	var kc *domain.KeyChangedError
	if errors.As(err, &kc) {
		if c, gerr := v.trust.Get(ctx, id.Name()); gerr == nil {
			v.keyChanged(c.Identity, id)
		}
		return err
	}
	if err != nil {
		return fmt.Errorf("pin %s: %w", id.Name(), err)
	}
	return nil
}

// PeerForSend resolves where to send to name now: the peer's key is the
// pinned one (checked against the directory's, pinned on first use) and its
// endpoints come from the directory. domain.ErrPeerOffline when it is not
// online; *domain.KeyChangedError when sending is blocked.
func (v *VerifyContact) PeerForSend(ctx context.Context, name domain.Username) (domain.Peer, error) {
	if err := v.Blocked(ctx, name); err != nil {
		return domain.Peer{}, err
	}
	p, err := v.lookup(ctx, name)
	if err != nil {
		return domain.Peer{}, err
	}
	if err := v.pinOrCheck(ctx, p.Identity); err != nil {
		return domain.Peer{}, err
	}
	if !p.Online {
		return domain.Peer{}, fmt.Errorf("%s: %w", name, domain.ErrPeerOffline)
	}
	return p, nil
}

// Safety returns what the verify screen shows for name.
func (v *VerifyContact) Safety(ctx context.Context, in VerifyContactInput) (ports.SafetyView, error) {
	c, err := v.trust.Get(ctx, in.Name)
	if errors.Is(err, domain.ErrNotFound) {
		// Not talked to yet: show the directory's key, pinning it (the
		// user is about to compare it, which is the point of a pin).
		p, lerr := v.lookup(ctx, in.Name)
		if lerr != nil {
			return ports.SafetyView{}, lerr
		}
		if err := v.pinOrCheck(ctx, p.Identity); err != nil {
			return ports.SafetyView{}, err
		}
		c, err = v.trust.Get(ctx, in.Name)
	}
	if err != nil {
		return ports.SafetyView{}, fmt.Errorf("trust lookup %s: %w", in.Name, err)
	}
	view := ports.SafetyView{
		Name:         c.Identity.Name(),
		SafetyNumber: domain.SafetyNumber(v.me.PublicKey(), c.Identity.PublicKey()),
		Ours:         v.me.Fingerprint(),
		Theirs:       c.Identity.Fingerprint(),
		Verified:     c.Verified,
	}
	v.mu.Lock()
	if newID, ok := v.pending[in.Name.Key()]; ok {
		fp := newID.Fingerprint()
		view.PendingKey = &fp
	}
	v.mu.Unlock()
	return view, nil
}

// SetVerified marks the contact verified (or not) after the user compared
// safety numbers. A contact whose key change is pending cannot be marked
// verified: the user must accept the new key first.
func (v *VerifyContact) SetVerified(ctx context.Context, in VerifyContactInput) error {
	if in.Verified {
		if err := v.Blocked(ctx, in.Name); err != nil {
			return err
		}
	}
	if err := v.trust.SetVerified(ctx, in.Name, in.Verified); err != nil {
		return fmt.Errorf("set verified %s: %w", in.Name, err)
	}
	return nil
}

// AcceptKeyChange pins the new key name presented (resetting verified) and
// unblocks sending. Without a recorded change it takes the directory's key
// if that differs from the pin; with no difference at all it returns an
// error wrapping domain.ErrNotFound.
func (v *VerifyContact) AcceptKeyChange(ctx context.Context, in VerifyContactInput) error {
	v.mu.Lock()
	newID, ok := v.pending[in.Name.Key()]
	v.mu.Unlock()
	if !ok {
		p, err := v.dir.Lookup(ctx, in.Name)
		if err != nil {
			return fmt.Errorf("look up %s: %w", in.Name, err)
		}
		c, err := v.trust.Get(ctx, in.Name)
		if err == nil && c.Identity.SameKey(p.Identity.PublicKey()) {
			return fmt.Errorf("%w: no key change pending for %s", domain.ErrNotFound, in.Name)
		}
		newID = p.Identity
	}
	if err := v.trust.Replace(ctx, newID, v.clock.Now()); err != nil {
		return fmt.Errorf("replace key of %s: %w", in.Name, err)
	}
	v.mu.Lock()
	if cur, ok := v.pending[in.Name.Key()]; ok && cur.SameKey(newID.PublicKey()) {
		delete(v.pending, in.Name.Key())
	}
	cb := v.onAccepted
	v.mu.Unlock()
	slog.Info("contact key change accepted", "peer", in.Name.String(), "new", newID.Fingerprint().Short())
	if cb != nil {
		cb(in.Name)
	}
	return nil
}

// keyChangePending reports whether name has a pending key change.
func (v *VerifyContact) keyChangePending(name domain.Username) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.pending[name.Key()]
	return ok
}

// PeerVerifier implements ports.PeerVerifier for the link adapters: a peer's
// presented key must be the one pinned for its name, or, for a name never
// seen before, the one the directory binds to it (which is then pinned).
type PeerVerifier struct {
	trust  ports.TrustStore
	dir    ports.Directory
	clock  ports.Clock
	events ports.EventSink

	mu        sync.Mutex
	announced map[string]domain.Fingerprint // name key → the changed key last announced
}

// maxAnnounced bounds the key changes a PeerVerifier remembers announcing.
const maxAnnounced = 1024

var _ ports.PeerVerifier = (*PeerVerifier)(nil)

// NewPeerVerifier builds the verifier the link adapters are constructed with.
func NewPeerVerifier(trust ports.TrustStore, dir ports.Directory, clock ports.Clock, events ports.EventSink) (*PeerVerifier, error) {
	switch {
	case trust == nil:
		return nil, errNilPort("trust store")
	case dir == nil:
		return nil, errNilPort("directory")
	case clock == nil:
		return nil, errNilPort("clock")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	return &PeerVerifier{trust: trust, dir: dir, clock: clock, events: events, announced: make(map[string]domain.Fingerprint)}, nil
}

// VerifyPeer accepts presented if its key is the pinned one; for an
// unpinned name, if it is the key the directory binds to the name (pinning
// it). *domain.KeyChangedError (and a KeyChangedEvent) for a pinned name
// with another key; domain.ErrUnknownPeer for a name nobody knows;
// ErrBlocked for a key the user blocked.
func (pv *PeerVerifier) VerifyPeer(ctx context.Context, presented domain.Identity) error {
	c, err := pv.trust.Get(ctx, presented.Name())
	switch {
	case err == nil:
		if kerr := c.CheckKey(presented); kerr != nil {
			pv.announce(c.Identity, presented)
			return kerr
		}
		if c.IsBlocked() {
			// Refused like any unknown key: the peer learns nothing but
			// a closed connection.
			return fmt.Errorf("%s: %w", presented.Name(), ErrBlocked)
		}
		return nil
	case !errors.Is(err, domain.ErrNotFound):
		return fmt.Errorf("trust lookup %s: %w", presented.Name(), err)
	}
	p, err := pv.dir.Lookup(ctx, presented.Name())
	if err != nil {
		return fmt.Errorf("look up %s: %w", presented.Name(), err)
	}
	if !p.Identity.SameKey(presented.PublicKey()) {
		return fmt.Errorf("%s presented key %s but the directory binds %s: refused",
			presented.Name(), presented.Fingerprint().Short(), p.Identity.Fingerprint().Short())
	}
	if err := pv.trust.Pin(ctx, presented, pv.clock.Now()); err != nil {
		return fmt.Errorf("pin %s: %w", presented.Name(), err)
	}
	return nil
}

// announce publishes a KeyChangedEvent once per new key, not at every retry
// of the peer's dial.
func (pv *PeerVerifier) announce(pinned, presented domain.Identity) {
	fp := presented.Fingerprint()
	pv.mu.Lock()
	last, ok := pv.announced[pinned.Name().Key()]
	if !ok && len(pv.announced) >= maxAnnounced {
		clear(pv.announced)
	}
	pv.announced[pinned.Name().Key()] = fp
	pv.mu.Unlock()
	if ok && last == fp {
		return
	}
	slog.Warn("a peer presented another key than the pinned one: link refused",
		"peer", pinned.Name().String(), "old", pinned.Fingerprint().Short(), "new", fp.Short())
	pv.events.Publish(ports.KeyChangedEvent{Name: pinned.Name(), Old: pinned.Fingerprint(), New: fp})
}
