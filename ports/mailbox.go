package ports

import (
	"context"
	"errors"
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
