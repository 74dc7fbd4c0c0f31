package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// AcceptFromAnyone treats every peer as a contact: no message requests,
// and offers from anyone may be auto-accepted (`--accept-from-anyone`, for
// bots that serve the public). Quotas still apply (the contacts' ones).
type AcceptFromAnyone bool

// ErrBlocked: the peer is blocked (unblock it first). It is
// domain.ErrBlocked, named here for the use-case's callers.
var ErrBlocked = domain.ErrBlocked

// quarantineRetry is the retry-after told to a stranger whose requests are
// full: by then the user may have accepted (its next try then gets in).
const quarantineRetry = time.Hour

// maxRelations bounds the relations cached for the receive path.
const maxRelations = 1 << 16

// ManageContacts is "decide who can reach me": contacts the user added or
// accepted, a stranger's first messages and offers held as a request in a
// capped quarantine, block (refused at the handshake from then on), and
// the quotas every peer's chats and offers pass before anything is stored.
type ManageContacts struct {
	me         domain.LocalIdentity
	trust      ports.TrustStore
	quarantine ports.QuarantineStore
	messages   ports.MessageStore
	verify     *VerifyContact
	receive    *ReceiveMessage
	clock      ports.Clock
	events     ports.EventSink
	limits     domain.QuarantineLimits
	anyone     bool
	quotas     *quotas

	// offer hands a released offer to the client's offer path.
	offer func(ctx context.Context, from domain.Identity, env ports.Envelope) error

	mu        sync.Mutex
	relations map[string]domain.Relation // cache of trust's relations, by name key

	// holdMu orders holding a stranger's item against the user's
	// decisions about strangers (accept, add, decline, block): an item is
	// either held before the decision, and so released or dropped with
	// the rest, or screened again after it.
	holdMu sync.Mutex
}

func newManageContacts(me domain.LocalIdentity, trust ports.TrustStore, quarantine ports.QuarantineStore, messages ports.MessageStore,
	verify *VerifyContact, receive *ReceiveMessage, clock ports.Clock, events ports.EventSink, opts Options) (*ManageContacts, error) {
	if quarantine == nil {
		return nil, errNilPort("quarantine store")
	}
	return &ManageContacts{me: me, trust: trust, quarantine: quarantine, messages: messages, verify: verify, receive: receive,
		clock: clock, events: events, limits: opts.Quarantine.OrDefault(), anyone: bool(opts.AcceptFromAnyone),
		quotas: newQuotas(opts.ContactQuota, opts.StrangerQuota), relations: make(map[string]domain.Relation)}, nil
}

// relation is what the user decided about name (RelationNone if unpinned).
func (mc *ManageContacts) relation(ctx context.Context, name domain.Username) (domain.Relation, error) {
	mc.mu.Lock()
	r, ok := mc.relations[name.Key()]
	mc.mu.Unlock()
	if ok {
		return r, nil
	}
	c, err := mc.trust.Get(ctx, name)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return domain.RelationNone, nil // not cached: the pin comes soon
	case err != nil:
		return 0, fmt.Errorf("trust lookup %s: %w", name, err)
	}
	mc.remember(name, c.Relation)
	return c.Relation, nil
}

func (mc *ManageContacts) remember(name domain.Username, r domain.Relation) {
	mc.mu.Lock()
	if len(mc.relations) >= maxRelations {
		clear(mc.relations)
	}
	mc.relations[name.Key()] = r
	mc.mu.Unlock()
}

// blocked reports whether name is blocked (an error reads as not blocked:
// screen looks again).
func (mc *ManageContacts) blocked(ctx context.Context, name domain.Username) bool {
	r, err := mc.relation(ctx, name)
	return err == nil && r == domain.RelationBlocked
}

// trusted reports whether name is a contact (or everyone is treated as one).
func (mc *ManageContacts) trusted(ctx context.Context, name domain.Username) bool {
	if mc.anyone {
		return true
	}
	r, err := mc.relation(ctx, name)
	return err == nil && r == domain.RelationContact
}

// setRelation stores and caches r for a pinned name, and tells the UIs.
func (mc *ManageContacts) setRelation(ctx context.Context, name domain.Username, r domain.Relation) error {
	if err := mc.trust.SetRelation(ctx, name, r); err != nil {
		return fmt.Errorf("set %s %s: %w", name, r, err)
	}
	mc.remember(name, r)
	c, _ := mc.trust.Get(ctx, name)
	mc.events.Publish(ports.ContactEvent{Name: name, Relation: r, Nickname: c.Nickname})
	return nil
}

// screen decides what becomes of a chat or an offer from an authenticated
// peer before anything is stored. pass: hand it to the normal path (a
// contact within its quota). Otherwise it was dealt with here: dropped
// (blocked), refused (over a quota: the peer is told when to retry), or
// held as a request (a stranger: acknowledged as delivered).
func (mc *ManageContacts) screen(ctx context.Context, from domain.Identity, env ports.Envelope) (pass bool, err error) {
	name := from.Name()
	rel, err := mc.relation(ctx, name)
	if err != nil {
		return false, err
	}
	if rel == domain.RelationBlocked {
		slog.Debug("envelope from a blocked peer dropped", "peer", name.String())
		return false, nil
	}
	isContact := rel == domain.RelationContact || mc.anyone
	size := int64(len(env.Body))
	if env.Kind == ports.KindOffer {
		size = domain.NewHeldOffer(from, env.TransferID, env.Manifest, time.Time{}).Size()
	}
	ok, why, retry := mc.quotas.take(name, isContact, size, mc.clock.Now())
	if !ok {
		mc.refuse(name, env, why, retry)
		return false, nil
	}
	if isContact {
		return true, nil
	}
	return mc.hold(ctx, from, env)
}

// refuse answers a chat the quotas turned away (an offer is simply not
// taken: its sender offers it again later).
func (mc *ManageContacts) refuse(name domain.Username, env ports.Envelope, why ports.RefusalReason, retry time.Duration) {
	slog.Debug("peer over its quota: refused", "peer", name.String(), "reason", why.String(), "retry_after", retry)
	if env.Kind == ports.KindChat {
		mc.receive.queueAck(pendingAck{to: name, kind: ports.KindRefused, id: env.MessageID, refusal: why, retryAfter: retry})
	}
}

// hold puts a stranger's chat or offer in the quarantine; pass when the
// user decided about the sender meanwhile and it is now a contact.
func (mc *ManageContacts) hold(ctx context.Context, from domain.Identity, env ports.Envelope) (pass bool, err error) {
	name, now := from.Name(), mc.clock.Now()
	mc.holdMu.Lock()
	defer mc.holdMu.Unlock()
	switch rel, err := mc.relation(ctx, name); {
	case err != nil:
		return false, err
	case rel == domain.RelationContact:
		return true, nil
	case rel == domain.RelationBlocked:
		return false, nil
	}
	var item domain.HeldItem
	switch env.Kind {
	case ports.KindChat:
		m, err := domain.NewIncomingMessage(env.MessageID, name, mc.me.Name(), mc.receive.sentAt(env.SentAt), env.Body)
		if err != nil {
			return false, fmt.Errorf("message %s from %s: %w", env.MessageID, name, err)
		}
		item = domain.NewHeldChat(from, m, now)
	case ports.KindOffer:
		man, err := domain.NewManifest(env.Manifest.Name, env.Manifest.Files)
		if err != nil {
			return false, fmt.Errorf("offer %s from %s: %w", env.TransferID.Short(), name, err)
		}
		item = domain.NewHeldOffer(from, env.TransferID, man, now)
	default:
		return false, fmt.Errorf("envelope kind %d from %s cannot be held", env.Kind, name)
	}
	isNew, err := mc.quarantine.Hold(ctx, item, mc.limits)
	if errors.Is(err, domain.ErrQuarantineFull) {
		slog.Debug("message requests full: refused", "peer", name.String(), "err", err)
		mc.refuse(name, env, ports.RefusedOverQuota, quarantineRetry)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("hold from %s: %w: %w", name, errNotStored, err)
	}
	// A held chat counts as delivered to its sender (like Signal's
	// requests): otherwise it would write it again forever.
	if env.Kind == ports.KindChat {
		mc.receive.queueAck(pendingAck{to: name, kind: ports.KindDelivered, id: env.MessageID})
	}
	if isNew {
		if v, ok := mc.requestView(ctx, name); ok {
			mc.events.Publish(ports.RequestEvent{Request: v})
		}
	}
	return false, nil
}

// requestView summarises what name has waiting.
func (mc *ManageContacts) requestView(ctx context.Context, name domain.Username) (ports.RequestView, bool) {
	reqs, err := mc.Requests(ctx)
	if err != nil {
		return ports.RequestView{}, false
	}
	for _, r := range reqs {
		if r.Request.From.Name().Equal(name) {
			return r, true
		}
	}
	return ports.RequestView{}, false
}

// Requests lists the strangers with something held, oldest first, with
// a preview of the first held message.
func (mc *ManageContacts) Requests(ctx context.Context) ([]ports.RequestView, error) {
	reqs, err := mc.quarantine.Requests(ctx)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	out := make([]ports.RequestView, 0, len(reqs))
	for _, r := range reqs {
		v := ports.RequestView{Request: r}
		if held, err := mc.quarantine.Held(ctx, r.From.Name()); err == nil {
			if i := slices.IndexFunc(held, func(h domain.HeldItem) bool { return h.Kind == domain.HeldChat }); i >= 0 {
				v.Preview = held[i].Message.Body()
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// Contacts lists the people the user added or accepted.
func (mc *ManageContacts) Contacts(ctx context.Context) ([]domain.Contact, error) {
	all, err := mc.trust.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list contacts: %w", err)
	}
	return slices.DeleteFunc(all, func(c domain.Contact) bool { return !c.IsContact() }), nil
}

// Accept makes name a contact and moves what it sent into the history and
// the transfers, in the order it arrived. A crash half-way is repaired by
// accepting again (the history deduplicates by message ID).
func (mc *ManageContacts) Accept(ctx context.Context, name domain.Username) error {
	mc.holdMu.Lock()
	defer mc.holdMu.Unlock()
	c, err := mc.trust.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("accept %s: %w", name, err)
	}
	if c.IsBlocked() {
		return fmt.Errorf("accept %s: %w", name, ErrBlocked)
	}
	if err := mc.setRelation(ctx, name, domain.RelationContact); err != nil {
		return err
	}
	return mc.release(ctx, c.Identity)
}

// release moves the held items of a contact into the history.
func (mc *ManageContacts) release(ctx context.Context, id domain.Identity) error {
	name := id.Name()
	held, err := mc.quarantine.Held(ctx, name)
	if err != nil {
		return fmt.Errorf("accept %s: %w", name, err)
	}
	for _, h := range held {
		if !h.From.SameKey(id.PublicKey()) {
			continue // held under a key the user has not accepted since
		}
		switch h.Kind {
		case domain.HeldChat:
			m, err := domain.NewIncomingMessage(h.Message.ID(), name, mc.me.Name(), h.Message.SentAt(), h.Message.Body())
			if err != nil {
				continue
			}
			isNew, err := mc.messages.SaveIncoming(ctx, m)
			if err != nil {
				return fmt.Errorf("accept %s: store message: %w", name, err)
			}
			if isNew {
				mc.receive.markUnread(name, m.ID())
				mc.events.Publish(ports.MessageEvent{Message: m})
			}
		case domain.HeldOffer:
			env := ports.Envelope{Kind: ports.KindOffer, TransferID: h.TransferID, Manifest: h.Manifest}
			if err := mc.offer(ctx, h.From, env); err != nil {
				slog.Warn("held offer not taken", "peer", name.String(), "transfer", h.TransferID.Short(), "err", err)
			}
		}
	}
	if _, err := mc.quarantine.Drop(ctx, name); err != nil {
		return fmt.Errorf("accept %s: %w", name, err)
	}
	return nil
}

// Decline drops what name sent; it stays a stranger (its next message is a
// request again).
func (mc *ManageContacts) Decline(ctx context.Context, name domain.Username) error {
	mc.holdMu.Lock()
	defer mc.holdMu.Unlock()
	n, err := mc.quarantine.Drop(ctx, name)
	if err != nil {
		return fmt.Errorf("decline %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("decline %s: %w: no request", name, domain.ErrNotFound)
	}
	mc.events.Publish(ports.ContactEvent{Name: name, Relation: domain.RelationNone})
	return nil
}

// Block drops what name sent and refuses its key at every handshake from
// now on (PeerVerifier). A name never seen is looked up and pinned first,
// so the key blocked is the one the directory binds now.
func (mc *ManageContacts) Block(ctx context.Context, name domain.Username) error {
	if name.Equal(mc.me.Name()) {
		return fmt.Errorf("block %s: %w: that is you", name, domain.ErrUnknownPeer)
	}
	mc.holdMu.Lock()
	defer mc.holdMu.Unlock()
	if _, err := mc.trust.Get(ctx, name); errors.Is(err, domain.ErrNotFound) {
		p, lerr := mc.verify.lookup(ctx, name)
		if lerr != nil {
			return fmt.Errorf("block %s: %w", name, lerr)
		}
		if err := mc.trust.Pin(ctx, p.Identity, mc.clock.Now()); err != nil {
			return fmt.Errorf("block %s: %w", name, err)
		}
	} else if err != nil {
		return fmt.Errorf("block %s: %w", name, err)
	}
	if err := mc.setRelation(ctx, name, domain.RelationBlocked); err != nil {
		return err
	}
	if _, err := mc.quarantine.Drop(ctx, name); err != nil {
		return fmt.Errorf("block %s: %w", name, err)
	}
	slog.Info("peer blocked", "peer", name.String())
	return nil
}

// Unblock makes a blocked name a stranger again.
func (mc *ManageContacts) Unblock(ctx context.Context, name domain.Username) error {
	c, err := mc.trust.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("unblock %s: %w", name, err)
	}
	if !c.IsBlocked() {
		return fmt.Errorf("unblock %s: %w: not blocked", name, domain.ErrNotFound)
	}
	return mc.setRelation(ctx, name, domain.RelationNone)
}

// Add makes name a contact: the user wrote to it or added it. What it sent
// as a request joins the history. ErrBlocked for a blocked name.
func (mc *ManageContacts) Add(ctx context.Context, name domain.Username) error {
	rel, err := mc.relation(ctx, name)
	if err != nil {
		return err
	}
	switch rel {
	case domain.RelationContact:
		return nil
	case domain.RelationBlocked:
		return fmt.Errorf("%s: %w", name, ErrBlocked)
	}
	if err := mc.verify.Recipient(ctx, name); err != nil { // looks up and pins
		return err
	}
	c, err := mc.trust.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	if c.IsBlocked() {
		return fmt.Errorf("%s: %w", name, ErrBlocked)
	}
	mc.holdMu.Lock()
	defer mc.holdMu.Unlock()
	if err := mc.setRelation(ctx, name, domain.RelationContact); err != nil {
		return err
	}
	return mc.release(ctx, c.Identity)
}

// SetNickname sets a pinned name's local nickname.
func (mc *ManageContacts) SetNickname(ctx context.Context, name domain.Username, nickname string) error {
	if err := mc.trust.SetNickname(ctx, name, nickname); err != nil {
		return fmt.Errorf("nickname of %s: %w", name, err)
	}
	c, err := mc.trust.Get(ctx, name)
	if err == nil {
		mc.events.Publish(ports.ContactEvent{Name: name, Relation: c.Relation, Nickname: c.Nickname})
	}
	return nil
}

// forget drops the cached relation of name (its key was replaced).
func (mc *ManageContacts) forget(name domain.Username) {
	mc.mu.Lock()
	delete(mc.relations, name.Key())
	mc.mu.Unlock()
}
