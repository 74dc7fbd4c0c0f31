package ports

import (
	"context"
	"time"

	"github.com/chatx/chatx/domain"
)

// QuarantineStore holds what strangers sent (message requests) until the
// user accepts, declines or blocks them. It is durable like the other
// stores and enforces its caps itself, atomically with the write, so that
// concurrent senders cannot pass them together.
type QuarantineStore interface {
	// Hold stores item unless its sender has an item with the same Key
	// held already (then it reports false and stores nothing). An item
	// that would pass a cap of limits is not stored: the error wraps
	// domain.ErrQuarantineFull.
	Hold(ctx context.Context, item domain.HeldItem, limits domain.QuarantineLimits) (bool, error)
	// Requests summarises every stranger with held items, the oldest
	// request first.
	Requests(ctx context.Context) ([]domain.Request, error)
	// Held returns what from has waiting, in the order it arrived.
	Held(ctx context.Context, from domain.Username) ([]domain.HeldItem, error)
	// Drop removes everything from holds and reports how many items it
	// removed (0 and no error when there were none).
	Drop(ctx context.Context, from domain.Username) (int, error)
}

// RefusalReason says why a receiver refused a chat (KindRefused).
type RefusalReason uint8

// Refusal reasons. Their numbers are part of the wire protocol.
const (
	RefusedSlowDown  RefusalReason = 1 // over the message rate: retry after RetryAfter
	RefusedOverQuota RefusalReason = 2 // over the bytes stored per day, or requests full
)

func (r RefusalReason) String() string {
	switch r {
	case RefusedSlowDown:
		return "slow-down"
	case RefusedOverQuota:
		return "over-quota"
	}
	return "refused"
}

// MaxRetryAfter bounds the retry-after a refusal may ask for (and that a
// sender honours): a day.
const MaxRetryAfter = 24 * time.Hour

// ContactsClient is what the user interfaces ask about contacts, message
// requests, blocking and presence status. ports.Client embeds it.
type ContactsClient interface {
	// Contacts lists the people the user added or accepted, by name.
	Contacts(ctx context.Context) ([]domain.Contact, error)
	// Requests lists the strangers with held messages or offers.
	Requests(ctx context.Context) ([]RequestView, error)
	// AcceptRequest makes name a contact and moves what it sent into the
	// history (in order, with MessageEvents) and into the transfers.
	AcceptRequest(ctx context.Context, name domain.Username) error
	// DeclineRequest drops what name sent; name stays a stranger.
	DeclineRequest(ctx context.Context, name domain.Username) error
	// Block drops what name sent and refuses its key at every handshake
	// from now on. The name is looked up (and its key pinned) if unknown.
	Block(ctx context.Context, name domain.Username) error
	// Unblock makes a blocked name a stranger again (not a contact).
	Unblock(ctx context.Context, name domain.Username) error
	// AddContact makes name a contact (looked up by exact name).
	AddContact(ctx context.Context, name domain.Username) error
	// SetNickname sets a local nickname ("" clears it).
	SetNickname(ctx context.Context, name domain.Username, nickname string) error
	// SetStatus sets our availability and status text, told to contacts.
	SetStatus(ctx context.Context, status domain.Status) error
	// Status is our own status now.
	Status() domain.Status
}

// RequestView is a stranger's request as a user interface lists it.
type RequestView struct {
	Request domain.Request
	// Preview is the first held message's text (empty for offers only).
	Preview string
}

// RequestEvent: a stranger's request arrived or grew (one more held item).
type RequestEvent struct{ Request RequestView }

// ContactEvent: what the user decided about a peer changed (contact,
// blocked, nickname) or a contact's status changed.
type ContactEvent struct {
	Name     domain.Username
	Relation domain.Relation
	Nickname string
	Status   domain.Status
}

// RefusedEvent: a peer refused our messages for a while (KindRefused):
// they stay in the outbox and are written again after RetryAfter. Sent
// once per pause, not per message.
type RefusedEvent struct {
	Peer       domain.Username
	Reason     RefusalReason
	RetryAfter time.Duration
}

func (RefusedEvent) isEvent() {}
func (RequestEvent) isEvent() {}
func (ContactEvent) isEvent() {}
