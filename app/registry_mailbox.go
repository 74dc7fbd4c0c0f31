package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Defaults of MailboxOptions (docs/registry-api.md §3.11).
const (
	DefaultMailQuotaCount = 1000
	DefaultMailQuotaBytes = 32 << 20
	DefaultMailSweep      = time.Minute
)

// MailboxOptions tune the registry's mailbox. Zero values take the defaults.
type MailboxOptions struct {
	// Quota bounds the unexpired mail parked for one recipient.
	Quota ports.MailQuota
	// SweepInterval is how often expired mail is deleted.
	SweepInterval time.Duration
}

// RegistryMailbox is the registry's mailbox: it parks sealed mail that a
// registered session deposits for a user, hands it only to that user
// proving its key over a fresh challenge, and forgets it on request or at
// its expiry. It never sees inside a blob (sealed by the sender to the
// recipient's mailbox key); it sees who receives mail, sizes and times.
type RegistryMailbox struct {
	reg     *Registry
	store   ports.MailboxStore
	prekeys ports.PrekeyStore
	opts    MailboxOptions
	log     *slog.Logger

	arrMu    sync.Mutex
	arrivals map[string]*arrivalSet // by recipient Username.Key
}

// arrivalSet is the watchers of one recipient's mailbox.
type arrivalSet struct{ chans map[chan struct{}]struct{} }

var _ ports.MailboxService = (*RegistryMailbox)(nil)

// MailboxRequestError blames a field of a mailbox request (a transport maps
// it to its "invalid request" answer).
type MailboxRequestError struct{ Reason string }

func (e *MailboxRequestError) Error() string { return "invalid mailbox request: " + e.Reason }

// InvalidRequest marks the error as the client's fault.
func (e *MailboxRequestError) InvalidRequest() bool { return true }

// NewRegistryMailbox builds the mailbox beside the registry service reg,
// whose accounts, challenges and clock it shares.
func NewRegistryMailbox(reg *Registry, store ports.MailboxStore, prekeys ports.PrekeyStore, opts MailboxOptions) (*RegistryMailbox, error) {
	switch {
	case reg == nil:
		return nil, errNilPort("registry service")
	case store == nil:
		return nil, errNilPort("mailbox store")
	case prekeys == nil:
		return nil, errNilPort("prekey store")
	}
	if opts.Quota.Count <= 0 {
		opts.Quota.Count = DefaultMailQuotaCount
	}
	if opts.Quota.Bytes <= 0 {
		opts.Quota.Bytes = DefaultMailQuotaBytes
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultMailSweep
	}
	return &RegistryMailbox{reg: reg, store: store, prekeys: prekeys, opts: opts, log: reg.log,
		arrivals: make(map[string]*arrivalSet)}, nil
}

// Options returns the effective options.
func (b *RegistryMailbox) Options() MailboxOptions { return b.opts }

// Run deletes expired mail every SweepInterval until ctx is done.
func (b *RegistryMailbox) Run(ctx context.Context) error {
	t := time.NewTicker(b.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := b.Sweep(ctx); err != nil && ctx.Err() == nil {
				b.log.Warn("sweep mailbox", "err", err)
			}
		}
	}
}

// Sweep deletes the mail expired now and reports how many.
func (b *RegistryMailbox) Sweep(ctx context.Context) (int, error) {
	n, err := b.store.Expire(ctx, b.reg.clock.Now())
	if err != nil {
		return n, fmt.Errorf("expire mail: %w", err)
	}
	if n > 0 {
		b.log.Info(fmt.Sprintf("mailbox: %d expired mails deleted", n), "count", n)
	}
	return n, nil
}

// Deposit parks blob for to.
func (b *RegistryMailbox) Deposit(ctx context.Context, from ports.SessionInfo, to domain.Username, blob []byte, ttl time.Duration) (ports.Mail, error) {
	switch {
	case len(blob) == 0:
		return ports.Mail{}, &MailboxRequestError{Reason: "empty blob"}
	case len(blob) > ports.MaxMailSize:
		return ports.Mail{}, fmt.Errorf("%w: blob of %d bytes (at most %d)", domain.ErrTooLarge, len(blob), ports.MaxMailSize)
	case ttl < 0 || ttl > ports.MaxMailTTL:
		return ports.Mail{}, &MailboxRequestError{Reason: fmt.Sprintf("expiry must be within %v", ports.MaxMailTTL)}
	case ttl == 0:
		ttl = ports.DefaultMailTTL
	}
	if _, err := b.reg.accounts.Get(ctx, to); errors.Is(err, domain.ErrNotFound) {
		return ports.Mail{}, fmt.Errorf("mail for %s: %w", to, domain.ErrUnknownPeer)
	} else if err != nil {
		return ports.Mail{}, fmt.Errorf("get account %s: %w", to, err)
	}
	if _, err := b.prekeys.GetPrekey(ctx, to); errors.Is(err, domain.ErrNotFound) {
		return ports.Mail{}, fmt.Errorf("mail for %s: %w", to, ports.ErrPrekeyMissing)
	} else if err != nil {
		return ports.Mail{}, fmt.Errorf("get prekey of %s: %w", to, err)
	}
	now := b.reg.clock.Now()
	m := ports.Mail{To: to, Blob: blob, Deposited: now, Expires: now.Add(ttl)}
	if _, err := io.ReadFull(b.reg.opts.Random, m.ID[:]); err != nil {
		return ports.Mail{}, fmt.Errorf("make mail id: %w", err)
	}
	if err := b.store.Put(ctx, m, b.opts.Quota); err != nil {
		if errors.Is(err, ports.ErrMailboxFull) {
			return ports.Mail{}, fmt.Errorf("mail for %s: quota of %d mails or %d bytes: %w", to, b.opts.Quota.Count, b.opts.Quota.Bytes, ports.ErrMailboxFull)
		}
		return ports.Mail{}, fmt.Errorf("park mail for %s: %w", to, err)
	}
	b.log.Debug("mail deposited", "peer", to.String(), "from", from.Identity.Name().String(), "bytes", len(blob))
	b.notify(to)
	return m, nil
}

// prover checks a mailbox proof: action, fresh challenge, signature, and
// the key bound to the name.
func (b *RegistryMailbox) prover(ctx context.Context, p domain.RegistryProof, action domain.RegistryAction, sig []byte) (domain.Identity, error) {
	id, err := b.reg.checkProof(ctx, p, action, sig)
	if err != nil {
		return domain.Identity{}, err
	}
	bound, err := b.reg.accounts.Get(ctx, id.Name())
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Identity{}, fmt.Errorf("mailbox of %s: %w", id.Name(), domain.ErrUnknownPeer)
	}
	if err != nil {
		return domain.Identity{}, fmt.Errorf("get account %s: %w", id.Name(), err)
	}
	if !bound.SameKey(p.Key) {
		return domain.Identity{}, fmt.Errorf("mailbox of %s: %w", id.Name(), domain.ErrNameTaken)
	}
	return id, nil
}

// Fetch returns the prover's oldest mail.
func (b *RegistryMailbox) Fetch(ctx context.Context, proof domain.RegistryProof, sig []byte, limit int) (ports.MailBatch, error) {
	id, err := b.prover(ctx, proof, domain.ActionMailboxFetch, sig)
	if err != nil {
		return ports.MailBatch{}, err
	}
	if limit <= 0 || limit > ports.MaxFetch {
		limit = ports.MaxFetch
	}
	list, err := b.store.List(ctx, id.Name(), b.reg.clock.Now(), limit+1)
	if err != nil {
		return ports.MailBatch{}, fmt.Errorf("list mail of %s: %w", id.Name(), err)
	}
	out := ports.MailBatch{Mail: list}
	if len(list) > limit {
		out.Mail, out.More = list[:limit], true
	}
	return out, nil
}

// Delete removes the prover's mail with the given IDs.
func (b *RegistryMailbox) Delete(ctx context.Context, proof domain.RegistryProof, sig []byte, ids []ports.MailID) error {
	if len(ids) > ports.MaxFetch {
		return &MailboxRequestError{Reason: fmt.Sprintf("%d ids, at most %d", len(ids), ports.MaxFetch)}
	}
	id, err := b.prover(ctx, proof, domain.ActionMailboxDelete, sig)
	if err != nil {
		return err
	}
	if err := b.store.Delete(ctx, id.Name(), ids); err != nil {
		return fmt.Errorf("delete mail of %s: %w", id.Name(), err)
	}
	return nil
}

// PublishPrekey stores the session's new mailbox key.
func (b *RegistryMailbox) PublishPrekey(ctx context.Context, from ports.SessionInfo, k ports.SignedPrekey) error {
	if !k.Name.Equal(from.Identity.Name()) {
		return &MailboxRequestError{Reason: "a mailbox key names its owner"}
	}
	if err := CheckPrekey(from.Identity, k, b.reg.clock.Now()); err != nil {
		return err
	}
	if err := b.prekeys.PutPrekey(ctx, k); err != nil {
		return fmt.Errorf("store prekey of %s: %w", k.Name, err)
	}
	return nil
}

// Prekey returns name's current unexpired mailbox key.
func (b *RegistryMailbox) Prekey(ctx context.Context, name domain.Username) (ports.SignedPrekey, error) {
	k, err := b.prekeys.GetPrekey(ctx, name)
	if errors.Is(err, domain.ErrNotFound) {
		if _, aerr := b.reg.accounts.Get(ctx, name); errors.Is(aerr, domain.ErrNotFound) {
			return ports.SignedPrekey{}, fmt.Errorf("prekey of %s: %w", name, domain.ErrUnknownPeer)
		}
		return ports.SignedPrekey{}, fmt.Errorf("prekey of %s: %w", name, ports.ErrPrekeyMissing)
	}
	if err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("get prekey of %s: %w", name, err)
	}
	if !b.reg.clock.Now().Before(k.Expires) {
		return ports.SignedPrekey{}, fmt.Errorf("prekey of %s expired: %w", name, ports.ErrPrekeyMissing)
	}
	return k, nil
}

// Arrivals signals each deposit for name until ctx is done.
func (b *RegistryMailbox) Arrivals(ctx context.Context, name domain.Username) <-chan struct{} {
	ch := make(chan struct{}, 1)
	b.arrMu.Lock()
	set, ok := b.arrivals[name.Key()]
	if !ok {
		set = &arrivalSet{chans: make(map[chan struct{}]struct{})}
		b.arrivals[name.Key()] = set
	}
	set.chans[ch] = struct{}{}
	b.arrMu.Unlock()
	out := make(chan struct{})
	go func() {
		defer close(out)
		defer func() {
			b.arrMu.Lock()
			delete(set.chans, ch)
			if len(set.chans) == 0 && b.arrivals[name.Key()] == set {
				delete(b.arrivals, name.Key())
			}
			b.arrMu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				select {
				case out <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func (b *RegistryMailbox) notify(to domain.Username) {
	b.arrMu.Lock()
	defer b.arrMu.Unlock()
	set, ok := b.arrivals[to.Key()]
	if !ok {
		return
	}
	for ch := range set.chans {
		select {
		case ch <- struct{}{}:
		default: // one signal pending is enough: the client fetches everything
		}
	}
}

// CheckPrekey checks a mailbox key published as owner: the owner's name,
// a known suite shape, sizes, times (created ≤ now+skew < expires ≤
// created+MaxPrekeyTTL) and the owner's signature over
// domain.PrekeySigningBytes.
func CheckPrekey(owner domain.Identity, k ports.SignedPrekey, now time.Time) error {
	const skew = 5 * time.Minute
	switch {
	case !k.Name.Equal(owner.Name()):
		return fmt.Errorf("prekey of %s names %s: %w", owner.Name(), k.Name, domain.ErrBadSignature)
	case len(k.Public) == 0 || len(k.Public) > ports.MaxPrekeySize:
		return fmt.Errorf("%w: mailbox key of %d bytes (1 to %d)", domain.ErrTooLarge, len(k.Public), ports.MaxPrekeySize)
	case k.Suite == "" || len(k.Suite) > 64:
		return &MailboxRequestError{Reason: "suite: 1 to 64 bytes"}
	case k.Created.After(now.Add(skew)) || !k.Expires.After(now) || k.Expires.Sub(k.Created) > ports.MaxPrekeyTTL:
		return &MailboxRequestError{Reason: fmt.Sprintf("a mailbox key must be valid now and for at most %v", ports.MaxPrekeyTTL)}
	}
	if err := domain.Verify(owner.PublicKey(), signingBytesOf(owner.PublicKey(), k), k.Signature); err != nil {
		return fmt.Errorf("mailbox key of %s: %w", owner.Name(), err)
	}
	return nil
}
