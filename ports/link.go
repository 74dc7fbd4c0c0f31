package ports

import (
	"context"
	"time"

	"github.com/chatx/chatx/domain"
)

// EnvelopeKind is the type of one unit of the peer protocol.
type EnvelopeKind uint8

// Envelope kinds. Their numbers are part of the wire protocol
// (docs/peer-protocol.md): never renumber, only add.
const (
	KindChat      EnvelopeKind = 1 // a chat message: MessageID, SentAt, Body
	KindDelivered EnvelopeKind = 2 // acknowledgement of a chat message: MessageID
	KindRead      EnvelopeKind = 3 // read receipt: MessageID
	KindTyping    EnvelopeKind = 4 // the sender is typing
	KindOffer     EnvelopeKind = 5 // a file or folder offer: TransferID, Manifest
	KindAccept    EnvelopeKind = 6 // the receiver accepts: TransferID
	KindDecline   EnvelopeKind = 7 // the receiver declines: TransferID, Reason
	KindCancel    EnvelopeKind = 8 // either side cancels: TransferID, Reason
	KindRefused   EnvelopeKind = 9 // the receiver did not take a chat: MessageID, Refusal, RetryAfter
	// KindExpired travels only sealed through the mailbox: our message
	// MessageID (sent at SentAt) expired unread in the peer's mailbox.
	KindExpired EnvelopeKind = 15
	KindStatus  EnvelopeKind = 20 // the sender's presence status, to contacts: Status
)

// Envelope is what use-cases exchange with a peer over a MessageLink. Only the
// fields of its Kind are meaningful.
type Envelope struct {
	Kind       EnvelopeKind
	MessageID  domain.MessageID
	SentAt     time.Time
	Body       string
	TransferID domain.TransferID
	Manifest   domain.Manifest
	Reason     string
	// KindRefused: why, and when the sender may write the message again.
	Refusal    RefusalReason
	RetryAfter time.Duration
	// KindStatus: the sender's availability and status text.
	Status domain.Status
	// Group is the payload of the group kinds (ports/groups.go), opaque to links.
	Group []byte
}

// MessageLink carries envelopes between two authenticated identities over
// whatever path the adapter found (TCP with mutual TLS, in-process memory,
// later QUIC or a relay). Nothing above it assumes a transport.
type MessageLink interface {
	// Send writes env to the peer, reusing the link to it or dialing one of
	// to.Endpoints.Link in order. The link must authenticate the peer as
	// to.Identity (its key, not just its name) or refuse. nil means written
	// to the link, not acknowledged by the peer. Errors: domain.ErrPeerOffline
	// (no endpoint answered), *domain.KeyChangedError (the peer presented
	// another key), or ctx's error.
	Send(ctx context.Context, to domain.Peer, env Envelope) error

	// Serve accepts links from peers until ctx is done, checking every
	// peer's key with the verifier the adapter was built with, and passes
	// each received envelope to h, in the order sent, one at a time per
	// peer. It returns nil when ctx is cancelled.
	Serve(ctx context.Context, h EnvelopeHandler) error

	// Endpoints are the addresses this link listens on, to advertise.
	Endpoints() []string

	// PathReporter: how the link to a peer runs now.
	PathReporter
}

// EnvelopeHandler receives envelopes from authenticated peers. An error is
// logged by the link and the envelope dropped (the sender retries unacknowledged messages).
type EnvelopeHandler interface {
	HandleEnvelope(ctx context.Context, from domain.Identity, env Envelope) error
}

// PeerVerifier decides whether a peer that dialled us (or that we dialled)
// may use a link: the presented key must be the one expected for the name —
// the local pin first, the directory second.
type PeerVerifier interface {
	// VerifyPeer returns nil to accept, *domain.KeyChangedError when a pinned
	// name presents another key, domain.ErrUnknownPeer when the name is not
	// known anywhere, or another error that refuses the link.
	VerifyPeer(ctx context.Context, presented domain.Identity) error
}
