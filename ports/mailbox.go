package ports

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chatx/chatx/domain"
)

// The registry's mailbox parks sealed mail for recipients who are offline
// (docs/registry-api.md, docs/peer-protocol.md). The registry sees who
// receives mail, its size and its expiry — never the content or the
// sender inside the seal.

// Errors of the mailbox stores and service.
var (
	// ErrMailboxFull: the recipient's quota (count or bytes) is used up.
	ErrMailboxFull = errors.New("recipient's mailbox is full")
	// ErrPrekeyMissing: the recipient has published no (valid) mailbox key.
	ErrPrekeyMissing = errors.New("recipient has no mailbox key")
)

// MailID names one parked blob; the registry draws it at random on deposit.
type MailID [16]byte

// Mail is one sealed blob parked for a recipient.
type Mail struct {
	ID        MailID
	To        domain.Username
	Blob      []byte // opaque to the registry
	Deposited time.Time
	Expires   time.Time
}

// MailQuota bounds one recipient's parked mail.
type MailQuota struct {
	Count int
	Bytes int64
}

// Admits checks m against q given the recipient's parked mail box (any
// order; mail expired at m.Deposited does not count): ErrMailboxFull when
// the count or the bytes would exceed the quota. For MailboxStore
// implementations.
func (q MailQuota) Admits(box []Mail, m Mail) error {
	count, size := 1, int64(len(m.Blob))
	for _, o := range box {
		if o.Expires.After(m.Deposited) {
			count++
			size += int64(len(o.Blob))
		}
	}
	if count > q.Count || size > q.Bytes {
		return fmt.Errorf("mail for %s: %d mails, %d bytes: %w", m.To, count, size, ErrMailboxFull)
	}
	return nil
}

// Unexpired returns copies (blobs included) of the mail of box, in its
// order, that has not expired at now, at most limit (0: all). For
// MailboxStore implementations.
func Unexpired(box []Mail, now time.Time, limit int) []Mail {
	var out []Mail
	for _, m := range box {
		if limit > 0 && len(out) == limit {
			break
		}
		if m.Expires.After(now) {
			m.Blob = append([]byte(nil), m.Blob...)
			out = append(out, m)
		}
	}
	return out
}

// MailboxStore keeps parked mail durably (a registry restart loses none).
// The embedded file store is the default; the Redis store shares it between
// registry nodes.
type MailboxStore interface {
	// Put parks m unless the recipient's unexpired mail plus m would exceed
	// q: ErrMailboxFull, and nothing is stored. m.ID is unique.
	Put(ctx context.Context, m Mail, q MailQuota) error
	// List returns to's mail that has not expired at now, oldest first, at
	// most limit (0: all).
	List(ctx context.Context, to domain.Username, now time.Time, limit int) ([]Mail, error)
	// Delete removes to's mail with the given IDs; unknown IDs are ignored.
	Delete(ctx context.Context, to domain.Username, ids []MailID) error
	// Expire removes every mail that expired at now and reports how many.
	Expire(ctx context.Context, now time.Time) (int, error)
}

// SignedPrekey is a mailbox public key a user published, signed by the
// user's identity key (the signed bytes: docs/peer-protocol.md).
type SignedPrekey struct {
	Name      domain.Username
	KeyID     uint32
	Public    []byte // the HPKE KEM public key
	Suite     string // e.g. "x25519-hkdf-sha256/chacha20poly1305"
	Created   time.Time
	Expires   time.Time
	Signature []byte
}

// PrekeyStore keeps the newest mailbox key each user published (durable).
type PrekeyStore interface {
	// PutPrekey stores k as name's current key, replacing an older one.
	PutPrekey(ctx context.Context, k SignedPrekey) error
	// GetPrekey returns name's current key; domain.ErrNotFound if none.
	GetPrekey(ctx context.Context, name domain.Username) (SignedPrekey, error)
}

// Limits of the mailbox (docs/registry-api.md §3.11).
const (
	// MaxMailSize bounds one sealed blob.
	MaxMailSize = 64 << 10
	// DefaultMailTTL is how long mail is kept when the sender asks for no
	// other time; MaxMailTTL is the longest a sender may ask for.
	DefaultMailTTL = 14 * 24 * time.Hour
	MaxMailTTL     = 30 * 24 * time.Hour
	// MaxPrekeySize bounds a published mailbox public key.
	MaxPrekeySize = 2048
	// MaxPrekeyTTL is the longest a published mailbox key may be valid.
	MaxPrekeyTTL = 60 * 24 * time.Hour
	// MaxFetch bounds the mail one fetch returns.
	MaxFetch = 64
)

// ErrMailboxDisabled: the registry runs no mailbox.
var ErrMailboxDisabled = errors.New("the registry keeps no mailbox")

// MailBatch is what one fetch returns: the oldest parked mail and how much
// more is waiting.
type MailBatch struct {
	Mail []Mail
	More bool
}

// MailboxService is the driving port of the registry's mailbox: the HTTP
// adapter (and the in-memory mailbox client) call it once they
// authenticated the session. app.RegistryMailbox implements it.
type MailboxService interface {
	// Deposit parks blob for to, deposited by the live session from, for
	// ttl (0: DefaultMailTTL; more than MaxMailTTL: an invalid-request
	// error). domain.ErrTooLarge (blob), domain.ErrUnknownPeer (no such
	// name), ErrPrekeyMissing (to never published a key), ErrMailboxFull.
	Deposit(ctx context.Context, from SessionInfo, to domain.Username, blob []byte, ttl time.Duration) (Mail, error)
	// Fetch returns up to limit (≤ MaxFetch) of the prover's parked mail,
	// oldest first. The proof (action mailbox-fetch) must be over a fresh
	// challenge and by the key bound to the name: domain.ErrBadSignature,
	// ErrChallengeInvalid, domain.ErrNameTaken (another key).
	Fetch(ctx context.Context, proof domain.RegistryProof, sig []byte, limit int) (MailBatch, error)
	// Delete removes the prover's mail with the given IDs (action
	// mailbox-delete); unknown IDs are ignored.
	Delete(ctx context.Context, proof domain.RegistryProof, sig []byte, ids []MailID) error
	// PublishPrekey stores k as the session's current mailbox key after
	// checking its signature by the session's identity key
	// (domain.ErrBadSignature) and its bounds (domain.ErrTooLarge, an
	// invalid-request error for times).
	PublishPrekey(ctx context.Context, from SessionInfo, k SignedPrekey) error
	// Prekey returns name's current unexpired mailbox key: ErrPrekeyMissing
	// when there is none, domain.ErrUnknownPeer when there is no such name.
	Prekey(ctx context.Context, name domain.Username) (SignedPrekey, error)
	// Arrivals signals (coalesced, never blocking a deposit) each time mail
	// is deposited for name, until ctx is done; then the channel is closed.
	Arrivals(ctx context.Context, name domain.Username) <-chan struct{}
}

// MailReceipt is what a deposit answers: the registry's ID for the mail
// and when it expires.
type MailReceipt struct {
	ID      MailID
	Expires time.Time
}

// Mailbox is what a client needs of the registry's mailbox (the registry
// client implements it; adapters/memory's over a MailboxService in tests).
// Fetch and Delete prove the client's key over a fresh challenge; the
// others ride the registered session.
type Mailbox interface {
	// PublishPrekey publishes k as our current mailbox key.
	// ErrSessionInvalid: not registered (yet).
	PublishPrekey(ctx context.Context, k SignedPrekey) error
	// Prekey returns name's current mailbox key as the registry has it
	// (the caller checks its signature). ErrPrekeyMissing, domain.ErrUnknownPeer.
	Prekey(ctx context.Context, name domain.Username) (SignedPrekey, error)
	// Deposit parks a sealed blob for to. ErrMailboxFull, ErrPrekeyMissing,
	// domain.ErrTooLarge, ErrBusy (rate limit: retry later).
	Deposit(ctx context.Context, to domain.Username, blob []byte, ttl time.Duration) (MailReceipt, error)
	// Fetch returns our oldest parked mail (at most MaxFetch).
	Fetch(ctx context.Context) (MailBatch, error)
	// Delete removes fetched mail we have handled.
	Delete(ctx context.Context, ids []MailID) error
	// MailWaiting signals (coalesced) each time the registry says new mail
	// arrived for us, and each time our session (re)connects, until ctx is
	// done; then the channel is closed.
	MailWaiting(ctx context.Context) (<-chan struct{}, error)
}

// Letter is what a sealed mail holds: the envelope, who sent it to whom
// and until when it is valid. The seal carries the sender's signature over
// all of it (docs/peer-protocol.md §9), so the registry can neither forge,
// redirect to another recipient nor extend it.
type Letter struct {
	From     domain.Identity
	To       domain.Identity
	Expires  time.Time
	Envelope Envelope
}

// Errors of sealing and opening.
var (
	// ErrMailUnreadable: the blob is not a mail sealed to one of our keys
	// (damaged, tampered with, for someone else, or its key was deleted).
	ErrMailUnreadable = errors.New("mail cannot be opened")
	// ErrMailExpired: the letter's expiry has passed.
	ErrMailExpired = errors.New("mail expired")
)

// MailSealer seals letters to a recipient's mailbox key and opens those
// sealed to ours (adapters/seal: HPKE, RFC 9180). It keeps no state.
type MailSealer interface {
	// Suite names the HPKE suite of the keys NewKey makes (SignedPrekey.Suite).
	Suite() string
	// NewKey makes a mailbox key pair: the public key to publish and the
	// private key to keep.
	NewKey() (public, private []byte, err error)
	// Seal signs l as from (l.From must be from's identity) and seals it
	// to key, the recipient's published mailbox key (whose signature the
	// caller checked).
	Seal(from domain.LocalIdentity, key SignedPrekey, l Letter) ([]byte, error)
	// Open opens a blob sealed to one of our keys (private returns the
	// private key of a key ID) and checks the letter: addressed to me,
	// signed by the key it names as sender, not expired at now.
	// ErrMailUnreadable, domain.ErrBadSignature, ErrMailExpired.
	Open(me domain.Identity, private func(keyID uint32) ([]byte, bool), blob []byte, now time.Time) (Letter, error)
}

// MailKey is one of our mailbox keys: what we published and its private
// half, kept until DeleteAfter (when every mail that could be sealed to it
// has expired).
type MailKey struct {
	Prekey      SignedPrekey
	Private     []byte
	DeleteAfter time.Time
}

// MailKeyStore keeps our mailbox keys in the profile.
type MailKeyStore interface {
	// SaveMailKey stores k (replacing one with its key ID).
	SaveMailKey(ctx context.Context, k MailKey) error
	// MailKeys lists our keys, oldest first.
	MailKeys(ctx context.Context) ([]MailKey, error)
	// DeleteMailKey deletes a key for good; unknown IDs are ignored.
	DeleteMailKey(ctx context.Context, keyID uint32) error
}
