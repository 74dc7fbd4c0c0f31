package ports

import (
	"time"

	"github.com/chatx/chatx/domain"
)

// Event is something a user interface shows. The concrete types below are
// the whole set; interfaces switch on them.
type Event interface{ isEvent() }

// MessageEvent: a message was stored (received, or written by us).
type MessageEvent struct{ Message domain.Message }

// MessageStateEvent: one of our messages moved (sent, delivered, read, failed).
type MessageStateEvent struct {
	ID    domain.MessageID
	Peer  domain.Username
	State domain.MessageState
	// Reason says why, for failed (the mail expired unread) and for a
	// message the mailbox refused (it stays queued): shown to the user.
	Reason string
}

// MailExpiredEvent: a message From sent us (at SentAt) expired unread in
// our mailbox at the registry before we fetched it; its sender told us.
type MailExpiredEvent struct {
	From   domain.Username
	ID     domain.MessageID
	SentAt time.Time
	Reason string
}

// PresenceEvent: a peer came online, went offline or moved.
type PresenceEvent struct{ Peer domain.Peer }

// DirectoryStatusEvent: the registry became reachable or unreachable.
type DirectoryStatusEvent struct {
	Connected bool
	Err       string
	// CertChanged: the directory's certificate does not match the pin
	// (ErrDirectoryCertChanged); interfaces warn as for a peer's key change.
	CertChanged bool
}

// RegisteredEvent: the directory bound our name to our key and we are
// online; published once per Client.Run, when the first registration
// succeeds. Interfaces take it as "ready".
type RegisteredEvent struct{ Name domain.Username }

// TransferEvent: a transfer changed state or made progress (at least four
// times a second while bytes move).
type TransferEvent struct{ Transfer domain.Transfer }

// KeyChangedEvent: a known name presented another key; sending to it is
// blocked until the user accepts the new key.
type KeyChangedEvent struct {
	Name     domain.Username
	Old, New domain.Fingerprint
}

// TypingEvent: the peer is typing.
type TypingEvent struct{ From domain.Username }

// ReachabilityEvent: an online peer became unreachable (Reason says why:
// "no path: punching timed out, relay refused …") or reachable again (Path
// says how). Sent once per change.
type ReachabilityEvent struct {
	Peer      domain.Username
	Reachable bool
	Reason    string
	Path      domain.Path
}

func (MessageEvent) isEvent()         {}
func (MessageStateEvent) isEvent()    {}
func (MailExpiredEvent) isEvent()     {}
func (PresenceEvent) isEvent()        {}
func (DirectoryStatusEvent) isEvent() {}
func (TransferEvent) isEvent()        {}
func (RegisteredEvent) isEvent()      {}
func (KeyChangedEvent) isEvent()      {}
func (TypingEvent) isEvent()          {}
func (ReachabilityEvent) isEvent()    {}

// EventSink receives events for user interfaces. Publish never blocks the
// caller for long: a slow subscriber loses progress events, never messages.
type EventSink interface {
	Publish(e Event)
}
