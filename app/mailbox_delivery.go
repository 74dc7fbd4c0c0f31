package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Bounds and paces of offline delivery.
const (
	// maxParked bounds the message, acknowledgement and offer IDs
	// remembered as deposited (beyond, the sets are cleared: at worst a
	// message is deposited twice, and the receiver deduplicates).
	maxParked = 1 << 16
	// prekeyCacheTTL is how long a peer's mailbox key is reused.
	prekeyCacheTTL = time.Minute
	// mailRecheck paces key rotation checks, the expiry of stored
	// messages and a fetch in case a notification was lost.
	mailRecheck = time.Minute
)

// mailDelivery is the machinery of offline delivery: it keeps our mailbox
// key published and rotated, seals and deposits what cannot be written to
// an offline peer (messages, acknowledgements, offers), and drains our own
// mailbox, handing each letter — its sender checked like a link's peer —
// to the same router as the links.
type mailDelivery struct {
	me       domain.LocalIdentity
	ports    MailPorts
	opts     MailOptions
	clock    ports.Clock
	events   ports.EventSink
	trust    ports.TrustStore
	verifier *PeerVerifier
	send     *SendMessage
	// handle is the router (set by the client): letters take the links' path.
	handle func(ctx context.Context, from domain.Identity, env ports.Envelope) error

	keyMu sync.Mutex
	keys  []ports.MailKey

	mu          sync.Mutex
	parked      map[domain.MessageID]struct{}
	parkedAcks  map[parkedAck]struct{}
	parkedOffer map[domain.TransferID]struct{}
	refused     map[domain.MessageID]string // the refusal last reported per message
	unreachable map[string]time.Time        // by peer name key: since when writes fail while online
	prekeys     map[string]cachedPrekey
	fetchNow    chan struct{}
	// redrain: a letter could not be stored (a disk error); it stays at the
	// registry and the next tick fetches it again.
	redrain atomic.Bool
}

type parkedAck struct {
	kind ports.EnvelopeKind
	id   domain.MessageID
}

type cachedPrekey struct {
	key ports.SignedPrekey
	at  time.Time
}

func newMailDelivery(me domain.LocalIdentity, p MailPorts, opts MailOptions, clock ports.Clock, events ports.EventSink,
	trust ports.TrustStore, verifier *PeerVerifier, send *SendMessage) *mailDelivery {
	return &mailDelivery{me: me, ports: p, opts: opts.withDefaults(), clock: clock, events: events, trust: trust, verifier: verifier, send: send,
		parked: make(map[domain.MessageID]struct{}), parkedAcks: make(map[parkedAck]struct{}), parkedOffer: make(map[domain.TransferID]struct{}),
		refused: make(map[domain.MessageID]string), unreachable: make(map[string]time.Time), prekeys: make(map[string]cachedPrekey),
		fetchNow: make(chan struct{}, 1)}
}

// durableKey marks a context whose envelopes must be stored before the
// handler returns (a letter is deleted from the mailbox right after).
type durableKey struct{}

func withDurable(ctx context.Context) context.Context {
	return context.WithValue(ctx, durableKey{}, true)
}

func isDurable(ctx context.Context) bool { v, _ := ctx.Value(durableKey{}).(bool); return v }

// Run keeps our key published, drains our mailbox whenever the registry
// says mail arrived (and at the start), and fails stored messages whose
// mail expired, until ctx is done.
func (d *mailDelivery) Run(ctx context.Context, retry Backoff) {
	retry = retry.orDefault()
	published, disabledSaid := false, false
	publish := func() {
		k, err := d.rotateKeys(ctx)
		if err == nil {
			err = d.ports.Box.PublishPrekey(ctx, k)
		}
		switch {
		case errors.Is(err, ports.ErrMailboxDisabled):
			if !disabledSaid {
				slog.Info("the registry keeps no mailbox: messages to offline peers wait for them")
				disabledSaid = true
			}
			return
		case err != nil:
			if ctx.Err() == nil {
				slog.Warn("mailbox key not published; will retry", "err", err)
			}
			return
		}
		if !published {
			slog.Info("mailbox key published", "key_id", k.KeyID)
		}
		published = true
	}
	var waiting <-chan struct{}
	wait := time.Duration(0)
	for waiting == nil && ctx.Err() == nil {
		publish()
		ch, err := d.ports.Box.MailWaiting(ctx)
		if err == nil {
			waiting = ch
			break
		}
		wait = retry.next(wait)
		if !sleep(ctx, jitter(wait)) {
			return
		}
	}
	d.expireStored(ctx)
	tick := time.NewTicker(min(mailRecheck, retry.Max))
	defer tick.Stop()
	checks := 0
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-waiting:
			if !ok {
				return
			}
			d.drain(ctx)
		case <-d.fetchNow:
			d.drain(ctx)
		case <-tick.C:
			checks++
			if !published || checks%60 == 0 {
				publish()
			}
			d.expireStored(ctx)
			if d.redrain.Swap(false) {
				d.drain(ctx)
			}
		}
	}
}

// drain fetches, opens and hands on every letter waiting for us, then
// deletes what it handled.
func (d *mailDelivery) drain(ctx context.Context) {
	for ctx.Err() == nil {
		batch, err := d.ports.Box.Fetch(ctx)
		if err != nil {
			if ctx.Err() == nil {
				slog.Warn("fetch mail", "err", err)
			}
			return
		}
		var letters []opened
		var done []ports.MailID
		now := d.clock.Now()
		for _, m := range batch.Mail {
			l, err := d.ports.Sealer.Open(d.me.Identity, d.private, m.Blob, now)
			if err != nil {
				// It can never be opened (or is too late): drop it.
				slog.Warn("mail refused", "mail", fmt.Sprintf("%x", m.ID[:4]), "err", err)
				done = append(done, m.ID)
				continue
			}
			letters = append(letters, opened{id: m.ID, l: l})
		}
		// Each sender's letters in the order it sent them.
		sort.SliceStable(letters, func(i, j int) bool { return letters[i].l.Envelope.SentAt.Before(letters[j].l.Envelope.SentAt) })
		withdrawn := withdrawnOffers(letters)
		for _, o := range letters {
			if withdrawn[o.id] {
				// An offer and its cancel waited together: neither is
				// shown, so nobody accepts a file its sender gave up.
				if o.l.Envelope.Kind == ports.KindOffer {
					slog.Info("withdrawn offer dropped", "peer", o.l.From.Name().String(), "transfer", o.l.Envelope.TransferID.Short())
				}
				done = append(done, o.id)
				continue
			}
			if err := d.deliver(ctx, o.l); err != nil {
				if ctx.Err() != nil {
					return // not deleted: fetched again next time
				}
				if errors.Is(err, errNotStored) {
					// Nothing is lost: this letter and the ones after it
					// stay at the registry, fetched again at the next tick.
					slog.Warn("mail kept at the registry: not stored", "peer", o.l.From.Name().String(), "err", err)
					d.redrain.Store(true)
					d.deleteFetched(ctx, done)
					return
				}
				slog.Warn("mail not handled", "peer", o.l.From.Name().String(), "err", err)
			}
			done = append(done, o.id)
		}
		if !d.deleteFetched(ctx, done) {
			return
		}
		if !batch.More || len(batch.Mail) == 0 {
			return
		}
	}
}

// opened is one fetched letter, opened.
type opened struct {
	id ports.MailID
	l  ports.Letter
}

// offerKey names one sender's transfer.
type offerKey struct {
	from string
	id   domain.TransferID
}

// withdrawnOffers returns the letters to drop unseen: every offer whose
// cancel, from the same sender, is among letters too, and that cancel.
func withdrawnOffers(letters []opened) map[ports.MailID]bool {
	offers := make(map[offerKey]ports.MailID)
	for _, o := range letters {
		if o.l.Envelope.Kind == ports.KindOffer {
			offers[offerKey{o.l.From.Name().Key(), o.l.Envelope.TransferID}] = o.id
		}
	}
	drop := make(map[ports.MailID]bool)
	for _, o := range letters {
		if o.l.Envelope.Kind != ports.KindCancel {
			continue
		}
		if offer, ok := offers[offerKey{o.l.From.Name().Key(), o.l.Envelope.TransferID}]; ok {
			drop[offer], drop[o.id] = true, true
		}
	}
	return drop
}

// deleteFetched deletes the handled mail at the registry; false when that
// failed (the mail is fetched again and deduplicated).
func (d *mailDelivery) deleteFetched(ctx context.Context, done []ports.MailID) bool {
	if len(done) == 0 {
		return true
	}
	if err := d.ports.Box.Delete(ctx, done); err != nil {
		if ctx.Err() == nil {
			slog.Warn("delete fetched mail", "err", err)
		}
		return false
	}
	return true
}

// deliver checks the letter's sender like a link's peer (pinned key, or
// the directory's on first contact) and hands the envelope on: an
// acknowledgement to the outbox, anything else to the router.
func (d *mailDelivery) deliver(ctx context.Context, l ports.Letter) error {
	if err := d.verifier.VerifyPeer(ctx, l.From); err != nil {
		return fmt.Errorf("letter from %s: %w", l.From.Name(), err)
	}
	switch env := l.Envelope; env.Kind {
	case ports.KindDelivered, ports.KindRead:
		return d.send.mailAck(ctx, l.From.Name(), env.Kind, env.MessageID)
	case ports.KindTyping:
		return nil // stale by the time it is read
	case ports.KindExpired:
		d.events.Publish(ports.MailExpiredEvent{From: l.From.Name(), ID: env.MessageID, SentAt: env.SentAt,
			Reason: "expired unread in our mailbox at the registry before we fetched it"})
		return nil
	default:
		return d.handle(withDurable(ctx), l.From, env)
	}
}

// prekey returns peer's mailbox key, checked against its pinned identity.
func (d *mailDelivery) prekey(ctx context.Context, peer domain.Identity) (ports.SignedPrekey, error) {
	now := d.clock.Now()
	d.mu.Lock()
	c, ok := d.prekeys[peer.Name().Key()]
	d.mu.Unlock()
	if ok && now.Sub(c.at) < prekeyCacheTTL && now.Before(c.key.Expires) {
		return c.key, nil
	}
	k, err := d.ports.Box.Prekey(ctx, peer.Name())
	if err != nil {
		return ports.SignedPrekey{}, err
	}
	// The registry cannot hand us a key of its own: the peer's identity
	// key (the one we pinned) signs it.
	if err := CheckPrekey(peer, k, now); err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("mailbox key of %s: %w", peer.Name(), err)
	}
	d.mu.Lock()
	if len(d.prekeys) >= maxCachedPeers {
		clear(d.prekeys)
	}
	d.prekeys[peer.Name().Key()] = cachedPrekey{key: k, at: now}
	d.mu.Unlock()
	return k, nil
}

// deposit seals env to peer's mailbox key, valid until expires, and
// parks it.
func (d *mailDelivery) deposit(ctx context.Context, peer domain.Username, env ports.Envelope, expires time.Time) error {
	c, err := d.trust.Get(ctx, peer)
	if err != nil {
		return fmt.Errorf("mail for %s: no pinned key: %w", peer, err)
	}
	k, err := d.prekey(ctx, c.Identity)
	if err != nil {
		return err
	}
	ttl := expires.Sub(d.clock.Now())
	if ttl < time.Second {
		return fmt.Errorf("mail for %s: %w", peer, ports.ErrMailExpired)
	}
	blob, err := d.ports.Sealer.Seal(d.me, k, ports.Letter{From: d.me.Identity, To: c.Identity, Expires: expires, Envelope: env})
	if err != nil {
		return err
	}
	if _, err := d.ports.Box.Deposit(ctx, peer, blob, (ttl + time.Second - 1).Truncate(time.Second)); err != nil {
		if errors.Is(err, ports.ErrPrekeyMissing) {
			d.mu.Lock()
			delete(d.prekeys, peer.Key())
			d.mu.Unlock()
		}
		return err
	}
	return nil
}

// expiresAt is when the mail of a message sent at sentAt expires: the
// sender's stamp plus TTL, so that it is known after a restart without
// storing it.
func (d *mailDelivery) expiresAt(sentAt time.Time) time.Time {
	return sentAt.Add(d.opts.TTL).Truncate(time.Second)
}

// park deposits, oldest first, the messages of msgs that are not stored
// yet, and marks each stored. It stops at the first refusal, which the
// user is told about (the message stays in the outbox).
func (d *mailDelivery) park(ctx context.Context, peer domain.Username, msgs []domain.Message) {
	for _, m := range msgs {
		if m.State() == domain.MessageStored || m.Direction() != domain.Outgoing {
			continue
		}
		d.mu.Lock()
		_, done := d.parked[m.ID()]
		d.mu.Unlock()
		if done {
			continue
		}
		expires := d.expiresAt(m.SentAt())
		if !d.clock.Now().Before(expires) {
			continue // too old for a mailbox: it waits for the peer
		}
		env := ports.Envelope{Kind: ports.KindChat, MessageID: m.ID(), SentAt: m.SentAt(), Body: m.Body()}
		if err := d.deposit(ctx, peer, env, expires); err != nil {
			if ctx.Err() == nil {
				d.refuse(m, err)
			}
			return
		}
		d.mu.Lock()
		if len(d.parked) >= maxParked {
			clear(d.parked)
		}
		d.parked[m.ID()] = struct{}{}
		delete(d.refused, m.ID())
		d.mu.Unlock()
		d.send.queueState(ctx, stateChange{id: m.ID(), peer: peer, state: domain.MessageStored})
	}
}

// refuse tells the user once per reason why a message could not be
// parked; it stays queued and is retried.
func (d *mailDelivery) refuse(m domain.Message, err error) {
	reason := mailRefusal(m.To(), err)
	d.mu.Lock()
	same := d.refused[m.ID()] == reason
	if len(d.refused) >= maxParked {
		clear(d.refused)
	}
	d.refused[m.ID()] = reason
	d.mu.Unlock()
	if same {
		return
	}
	slog.Info("message not parked in the mailbox", "peer", m.To().String(), "id", m.ID().String(), "err", err)
	d.events.Publish(ports.MessageStateEvent{ID: m.ID(), Peer: m.To(), State: m.State(), Reason: reason})
}

func mailRefusal(peer domain.Username, err error) string {
	switch {
	case errors.Is(err, ports.ErrMailboxFull):
		return fmt.Sprintf("%s's mailbox is full; the message waits here until %s comes online", peer, peer)
	case errors.Is(err, ports.ErrPrekeyMissing):
		return fmt.Sprintf("%s has no mailbox yet; the message waits here until %s comes online", peer, peer)
	case errors.Is(err, ports.ErrBusy):
		return "the registry is busy; the message will be parked again shortly"
	}
	return fmt.Sprintf("not parked in %s's mailbox (%v); it waits here", peer, err)
}

// parkAck deposits an acknowledgement or read receipt for an offline peer.
func (d *mailDelivery) parkAck(ctx context.Context, to domain.Username, kind ports.EnvelopeKind, id domain.MessageID) {
	key := parkedAck{kind: kind, id: id}
	d.mu.Lock()
	_, done := d.parkedAcks[key]
	d.mu.Unlock()
	if done {
		return
	}
	now := d.clock.Now()
	env := ports.Envelope{Kind: kind, MessageID: id, SentAt: now.UTC()}
	if err := d.deposit(ctx, to, env, now.Add(d.opts.TTL).Truncate(time.Second)); err != nil {
		slog.Debug("acknowledgement not parked", "peer", to.String(), "err", err)
		return
	}
	d.mu.Lock()
	if len(d.parkedAcks) >= maxParked {
		clear(d.parkedAcks)
	}
	d.parkedAcks[key] = struct{}{}
	d.mu.Unlock()
}

// parkOffer deposits a file offer for an offline peer; the data flows
// once both are online.
func (d *mailDelivery) parkOffer(ctx context.Context, t domain.Transfer) {
	d.mu.Lock()
	_, done := d.parkedOffer[t.ID()]
	d.mu.Unlock()
	if done {
		return
	}
	now := d.clock.Now()
	env := ports.Envelope{Kind: ports.KindOffer, TransferID: t.ID(), Manifest: t.Manifest(), SentAt: now.UTC()}
	if err := d.deposit(ctx, t.Peer(), env, now.Add(d.opts.TTL).Truncate(time.Second)); err != nil {
		slog.Debug("offer not parked", "peer", t.Peer().String(), "transfer", t.ID().Short(), "err", err)
		return
	}
	d.mu.Lock()
	if len(d.parkedOffer) >= maxParked {
		clear(d.parkedOffer)
	}
	d.parkedOffer[t.ID()] = struct{}{}
	d.mu.Unlock()
}

// parkCancel deposits the cancel of a transfer whose offer we parked, so
// the peer does not take a stale offer from its mailbox.
func (d *mailDelivery) parkCancel(ctx context.Context, t domain.Transfer, reason string) {
	d.mu.Lock()
	_, parked := d.parkedOffer[t.ID()]
	d.mu.Unlock()
	if !parked {
		return
	}
	now := d.clock.Now()
	env := ports.Envelope{Kind: ports.KindCancel, TransferID: t.ID(), Reason: reason, SentAt: now.UTC()}
	if err := d.deposit(ctx, t.Peer(), env, now.Add(d.opts.TTL).Truncate(time.Second)); err != nil {
		slog.Debug("cancel not parked", "peer", t.Peer().String(), "transfer", t.ID().Short(), "err", err)
	}
}

// noteUnreachable records a failed write to an online peer and reports
// for how long writes to it have been failing.
func (d *mailDelivery) noteUnreachable(peer domain.Username) time.Duration {
	now := d.clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	since, ok := d.unreachable[peer.Key()]
	if !ok {
		if len(d.unreachable) >= maxCachedPeers {
			clear(d.unreachable)
		}
		d.unreachable[peer.Key()] = now
		return 0
	}
	return now.Sub(since)
}

// reached forgets that writes to peer were failing.
func (d *mailDelivery) reached(peer domain.Username) {
	d.mu.Lock()
	delete(d.unreachable, peer.Key())
	d.mu.Unlock()
}

// expireStored fails our stored messages whose mail has expired unread.
func (d *mailDelivery) expireStored(ctx context.Context) {
	peers, err := d.send.store.OutboxPeers(ctx)
	if err != nil {
		if ctx.Err() == nil {
			slog.Warn("list outbox", "err", err)
		}
		return
	}
	now := d.clock.Now()
	for _, p := range peers {
		msgs, err := d.send.store.Outbox(ctx, p)
		if err != nil {
			slog.Warn("read outbox", "peer", p.String(), "err", err)
			continue
		}
		for _, m := range msgs {
			if m.State() != domain.MessageStored || now.Before(d.expiresAt(m.SentAt())) {
				continue
			}
			got, err := d.send.store.SetState(ctx, m.ID(), domain.MessageFailed)
			if err != nil {
				continue // acknowledged meanwhile
			}
			reason := fmt.Sprintf("expired in %s's mailbox before %s fetched it", p, p)
			d.events.Publish(ports.MessageStateEvent{ID: m.ID(), Peer: got.To(), State: got.State(), Reason: reason})
			// Tell the peer too, so both sides see it failed (best effort:
			// a notice that cannot be parked is not retried).
			notice := ports.Envelope{Kind: ports.KindExpired, MessageID: m.ID(), SentAt: m.SentAt().UTC()}
			if err := d.deposit(ctx, p, notice, now.Add(ports.DefaultMailTTL).Truncate(time.Second)); err != nil {
				slog.Debug("expiry notice not parked", "peer", p.String(), "err", err)
			}
		}
	}
}
