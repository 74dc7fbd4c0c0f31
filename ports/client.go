package ports

import (
	"context"

	"github.com/chatx/chatx/domain"
)

// Client is the driving port: what a user interface (the terminal UI, the
// JSON-RPC front) can ask of a running ChatX client. app.Client implements it.
type Client interface {
	// Whoami is our own identity.
	Whoami() domain.Identity
	// Endpoints are the addresses we listen on (message link, file transport).
	Endpoints() domain.Endpoints

	// Reachability is what `chatx doctor` prints: the NAT's mapping
	// behaviour, our candidates and the last connection attempts.
	Reachability(ctx context.Context) ReachabilityReport
	// Peers lists every user the directory knows plus pinned contacts,
	// online first.
	Peers(ctx context.Context) ([]PeerView, error)

	// Send queues text to a peer; it is stored in the outbox before this
	// returns and retried until the peer acknowledges it.
	// *domain.KeyChangedError: the peer's key changed, sending is blocked.
	Send(ctx context.Context, to domain.Username, text string) (domain.Message, error)
	// SendPipeline: StartSend, Send with many in flight, in order.
	SendPipeline
	// Typing tells the peer we are typing (best effort).
	Typing(ctx context.Context, to domain.Username) error
	// MarkRead sends read receipts for the conversation with a peer.
	MarkRead(ctx context.Context, with domain.Username) error
	// History returns the last limit messages with a peer, oldest first.
	History(ctx context.Context, with domain.Username, limit int) ([]domain.Message, error)
	// Search finds messages containing every word of query, newest first.
	Search(ctx context.Context, query string, limit int) ([]domain.Message, error)

	// SendFile offers a file or folder to a peer.
	SendFile(ctx context.Context, to domain.Username, path string) (domain.Transfer, error)
	// AcceptTransfer, DeclineTransfer and CancelTransfer answer or stop a transfer.
	AcceptTransfer(ctx context.Context, id domain.TransferID) error
	DeclineTransfer(ctx context.Context, id domain.TransferID) error
	CancelTransfer(ctx context.Context, id domain.TransferID) error
	// Transfers lists transfers, newest first.
	Transfers(ctx context.Context) ([]domain.Transfer, error)

	// Safety returns what the user compares to verify a contact.
	Safety(ctx context.Context, name domain.Username) (SafetyView, error)
	// SetVerified marks a contact verified (or not) after comparing.
	SetVerified(ctx context.Context, name domain.Username, verified bool) error
	// AcceptKeyChange pins the new key a contact presented and unblocks sending.
	AcceptKeyChange(ctx context.Context, name domain.Username) error

	// Subscribe streams events until ctx is done; the channel is closed then.
	Subscribe(ctx context.Context) <-chan Event
}

// ReachabilityReport is how we can be reached and how reaching others went.
type ReachabilityReport struct {
	NAT        domain.NATMapping
	Candidates []string  // "host 192.168.1.5:41000", "srflx 203.0.113.9:41000" …
	Attempts   []Attempt // newest first
}

// PeerView is a peer as a user interface lists it.
type PeerView struct {
	Peer       domain.Peer
	Verified   bool
	KeyChanged bool // a key change is waiting for the user's decision
	Unread     int
	// Path is how the message link to the peer runs now (zero: no link).
	Path domain.Path
}

// SafetyView is what the verify screen shows.
type SafetyView struct {
	Name         domain.Username
	SafetyNumber string
	Ours         domain.Fingerprint
	Theirs       domain.Fingerprint
	Verified     bool
	// PendingKey is set when the peer presented a key other than the pinned one.
	PendingKey *domain.Fingerprint
}
