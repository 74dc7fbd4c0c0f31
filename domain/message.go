package domain

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
	"unicode/utf8"
)

// MaxMessageBytes bounds a message body (UTF-8 bytes).
const MaxMessageBytes = 64 << 10

// MessageID is a 128-bit identifier chosen by the sender. Receivers
// deduplicate by it and must not read anything into it.
type MessageID [16]byte

// NewMessageID draws an ID: the Unix time in milliseconds (6 bytes,
// big-endian) followed by 80 random bits. Time first makes the IDs a
// client writes grow, so a store's indexes of them take each new one at
// their end instead of at a random page (with random IDs, every batch of
// messages dirtied a page of each ID index per message); the time is the
// one the message carries anyway, and 80 random bits a millisecond keep
// the IDs unguessable and distinct.
func NewMessageID() MessageID {
	var id MessageID
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		id[i] = byte(ms)
		ms >>= 8
	}
	if _, err := rand.Read(id[6:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	return id
}

// ParseMessageID reads the hex form of an ID.
func ParseMessageID(s string) (MessageID, error) {
	var id MessageID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: message id %q", ErrNotFound, s)
	}
	copy(id[:], b)
	return id, nil
}

func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// MessageState is where a message is on its way.
type MessageState int

// Message states. Outgoing messages go queued → sent → delivered (→ read),
// or, when the peer is offline, queued → stored (parked, sealed, in the
// peer's mailbox at the registry) → delivered (→ read); failed is for
// messages that can never be delivered (and may be queued again).
// Incoming messages are stored as delivered. The numbers are not stored
// anywhere (storage keeps the String form): new states may go anywhere.
const (
	MessageQueued MessageState = iota + 1
	MessageSent
	MessageDelivered
	MessageRead
	MessageFailed
	MessageStored
)

var messageStateNames = map[MessageState]string{
	MessageQueued: "queued", MessageSent: "sent", MessageDelivered: "delivered",
	MessageRead: "read", MessageFailed: "failed", MessageStored: "stored",
}

func (s MessageState) String() string {
	if n, ok := messageStateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("MessageState(%d)", int(s))
}

// ParseMessageState reads the String form of a state.
func ParseMessageState(s string) (MessageState, error) {
	for k, v := range messageStateNames {
		if v == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown message state %q", s)
}

// messageMoves lists the allowed transitions. Acknowledgements can overtake
// the local "sent" record, so delivered may follow queued directly; repeated
// acknowledgements are idempotent (same state to same state is allowed by CanMove).
// Stored is "sent, and parked in the peer's mailbox": a later direct write
// does not take it back to sent (MarkSent keeps it).
var messageMoves = map[MessageState][]MessageState{
	MessageQueued:    {MessageSent, MessageStored, MessageDelivered, MessageRead, MessageFailed},
	MessageSent:      {MessageStored, MessageDelivered, MessageRead, MessageFailed, MessageQueued},
	MessageStored:    {MessageDelivered, MessageRead, MessageFailed},
	MessageDelivered: {MessageRead},
	MessageRead:      nil,
	MessageFailed:    {MessageQueued},
}

// CanMove reports whether a message in state s may move to next.
func (s MessageState) CanMove(next MessageState) bool {
	if s == next {
		return true
	}
	for _, m := range messageMoves[s] {
		if m == next {
			return true
		}
	}
	return false
}

// Direction says whether a message or transfer is ours or the peer's.
type Direction int

// Directions.
const (
	Outgoing Direction = iota + 1
	Incoming
)

func (d Direction) String() string {
	switch d {
	case Outgoing:
		return "out"
	case Incoming:
		return "in"
	}
	return "unknown"
}

// Message is one chat message between two users.
type Message struct {
	id     MessageID
	from   Username
	to     Username
	sentAt time.Time
	body   string
	dir    Direction
	state  MessageState
}

// ValidateBody checks a message text against the rules: non-empty, valid
// UTF-8, at most 64 KiB.
func ValidateBody(body string) error {
	switch {
	case len(body) == 0:
		return ErrEmptyMessage
	case len(body) > MaxMessageBytes:
		return ErrMessageTooLong
	case !utf8.ValidString(body):
		return ErrInvalidUTF8
	}
	return nil
}

// NewOutgoingMessage makes a queued message from us to a peer.
func NewOutgoingMessage(from, to Username, body string, now time.Time) (Message, error) {
	if err := ValidateBody(body); err != nil {
		return Message{}, err
	}
	if from.IsZero() || to.IsZero() {
		return Message{}, fmt.Errorf("%w: message needs a sender and a recipient", ErrInvalidUsername)
	}
	return Message{id: NewMessageID(), from: from, to: to, sentAt: now.UTC(), body: body, dir: Outgoing, state: MessageQueued}, nil
}

// NewIncomingMessage makes a delivered message received from a peer, checking
// what the peer sent.
func NewIncomingMessage(id MessageID, from, to Username, sentAt time.Time, body string) (Message, error) {
	if err := ValidateBody(body); err != nil {
		return Message{}, err
	}
	if from.IsZero() || to.IsZero() {
		return Message{}, fmt.Errorf("%w: message needs a sender and a recipient", ErrInvalidUsername)
	}
	return Message{id: id, from: from, to: to, sentAt: sentAt.UTC(), body: body, dir: Incoming, state: MessageDelivered}, nil
}

// RestoreMessage rebuilds a message from storage. Only storage adapters call
// it; it trusts its input as the store wrote it.
func RestoreMessage(id MessageID, from, to Username, sentAt time.Time, body string, dir Direction, state MessageState) Message {
	return Message{id: id, from: from, to: to, sentAt: sentAt.UTC(), body: body, dir: dir, state: state}
}

func (m Message) ID() MessageID        { return m.id }
func (m Message) From() Username       { return m.from }
func (m Message) To() Username         { return m.to }
func (m Message) SentAt() time.Time    { return m.sentAt }
func (m Message) Body() string         { return m.body }
func (m Message) Direction() Direction { return m.dir }
func (m Message) State() MessageState  { return m.state }
func (m Message) IsZero() bool         { return m.id == MessageID{} }

// Peer is the other side of the conversation the message belongs to.
func (m Message) Peer() Username {
	if m.dir == Incoming {
		return m.from
	}
	return m.to
}

// MoveTo changes the state if the rules allow it.
func (m *Message) MoveTo(next MessageState) error {
	if !m.state.CanMove(next) {
		return &TransitionError{What: "message " + m.id.String(), From: m.state.String(), To: next.String()}
	}
	m.state = next
	return nil
}

// MarkSent records that the message was written to a link.
func (m *Message) MarkSent() error {
	if m.state == MessageDelivered || m.state == MessageRead || m.state == MessageStored {
		return nil // an acknowledgement overtook the local record, or it is in the mailbox already
	}
	return m.MoveTo(MessageSent)
}

// MarkDelivered records the peer's delivery acknowledgement.
func (m *Message) MarkDelivered() error {
	if m.state == MessageRead {
		return nil
	}
	return m.MoveTo(MessageDelivered)
}

// MarkStored records that the message is sealed and parked in the peer's
// mailbox at the registry.
func (m *Message) MarkStored() error {
	if m.state == MessageDelivered || m.state == MessageRead {
		return nil // the peer acknowledged it meanwhile
	}
	return m.MoveTo(MessageStored)
}

// IsPending reports whether an outgoing message still waits for the
// peer's acknowledgement (queued, sent or stored): it is in the outbox.
func (m Message) IsPending() bool {
	return m.dir == Outgoing && (m.state == MessageQueued || m.state == MessageSent || m.state == MessageStored)
}

// MarkRead records the peer's read receipt.
func (m *Message) MarkRead() error { return m.MoveTo(MessageRead) }

// MarkFailed records that the message cannot be delivered.
func (m *Message) MarkFailed() error { return m.MoveTo(MessageFailed) }
