package ports

import (
	"context"
	"time"

	"github.com/chatx/chatx/domain"
)

// MessageStore keeps history and the outbox of a profile. Every method is
// durable when it returns (the real adapter batches commits of concurrent
// callers, it does not acknowledge before they are on disk), except
// MarkStates (MessageMarks), whose marks may be lost harmlessly.
type MessageStore interface {
	MessageMarks
	OutboxStaging
	// SaveOutgoing stores a new outgoing message in history and in the
	// outbox. Callers report it as sent only after this returns nil.
	SaveOutgoing(ctx context.Context, m domain.Message) error
	// SaveIncoming stores a received message unless one with the same ID
	// from the same sender is stored already; it reports whether it was new.
	SaveIncoming(ctx context.Context, m domain.Message) (bool, error)
	// SetState moves one of our messages to state s if the domain's rules
	// allow it, and returns it. domain.ErrNotFound: no such message;
	// domain.ErrInvalidTransition: the move is not allowed (the stored state is kept).
	SetState(ctx context.Context, id domain.MessageID, s domain.MessageState) (domain.Message, error)
	// Outbox lists our messages to peer that are not yet delivered (queued
	// or sent), oldest first.
	Outbox(ctx context.Context, peer domain.Username) ([]domain.Message, error)
	// OutboxPeers lists the peers with messages in the outbox.
	OutboxPeers(ctx context.Context) ([]domain.Username, error)
	// History returns at most limit messages with peer sent before before
	// (the zero time: the newest), oldest first.
	History(ctx context.Context, peer domain.Username, before time.Time, limit int) ([]domain.Message, error)
	// Search returns at most limit messages whose body contains every word
	// of query, newest first.
	Search(ctx context.Context, query string, limit int) ([]domain.Message, error)
}

// TrustStore keeps the keys pinned for names (trust on first use), which
// of them the user verified, and what the user decided about them
// (contact or blocked, a nickname). Pinned is not a contact: a stranger
// that wrote to us is pinned too.
type TrustStore interface {
	// Get returns the contact pinned for name; domain.ErrNotFound if none.
	Get(ctx context.Context, name domain.Username) (domain.Contact, error)
	// Pin stores id on first use. If a different key is already pinned for
	// the name it stores nothing and returns *domain.KeyChangedError.
	// Pinning the same key again is a no-op.
	Pin(ctx context.Context, id domain.Identity, now time.Time) error
	// Replace pins a new key the user accepted; verified is reset.
	Replace(ctx context.Context, id domain.Identity, now time.Time) error
	// SetVerified marks a pinned contact verified or not; domain.ErrNotFound if none.
	SetVerified(ctx context.Context, name domain.Username, verified bool) error
	// List returns every pinned name (contacts, strangers and blocked).
	List(ctx context.Context) ([]domain.Contact, error)
	// SetRelation records what the user decided about a pinned name
	// (contact, blocked, none); domain.ErrNotFound if none is pinned.
	// Replace keeps it: a contact whose key changed stays a contact.
	SetRelation(ctx context.Context, name domain.Username, r domain.Relation) error
	// SetNickname sets the local nickname of a pinned name ("" clears
	// it; checked with domain.ValidateNickname); domain.ErrNotFound if
	// none is pinned. Replace keeps it.
	SetNickname(ctx context.Context, name domain.Username, nickname string) error
}

// TransferStore keeps transfers so they survive restarts and can resume.
type TransferStore interface {
	// Save inserts or replaces a transfer; it is durable when it returns.
	Save(ctx context.Context, t domain.Transfer) error
	// SaveSoon is Save for a change whose loss only repeats a step of the
	// protocol (an acceptance heard, a stream started): it may return before
	// the change is durable. It is visible to Get and List at once and
	// becomes durable no later than the store's next durable write; only a
	// power cut (not a killed process) may lose it.
	SaveSoon(ctx context.Context, t domain.Transfer) error
	// Get returns one transfer; domain.ErrNotFound if none.
	Get(ctx context.Context, id domain.TransferID) (domain.Transfer, error)
	// List returns every transfer, newest first.
	List(ctx context.Context) ([]domain.Transfer, error)
}
