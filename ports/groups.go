package ports

import (
	"context"
	"time"

	"github.com/chatx/chatx/domain"
)

// Envelope kinds of groups (docs/peer-protocol.md, "Groups"). Envelope.Group
// holds their payload, encoded by the group transport; links carry it as
// opaque bytes.
const (
	KindGroupMessage EnvelopeKind = 10 // a member's message to a group
	KindGroupAck     EnvelopeKind = 11 // acknowledgement of a group message
	KindGroupLog     EnvelopeKind = 12 // entries of a group's membership log
	KindGroupLogAsk  EnvelopeKind = 13 // "send me the log of this group"
	KindGroupFile    EnvelopeKind = 14 // a file offered to a group: which transfer it is
)

// MaxGroupPayload bounds Envelope.Group (the frame limit is 1 MiB).
const MaxGroupPayload = 1<<20 - 64

// IsGroupKind reports whether k is one of the group envelope kinds.
func IsGroupKind(k EnvelopeKind) bool { return k >= KindGroupMessage && k <= KindGroupFile }

// GroupStore keeps the groups of a profile: their membership logs, their
// messages, and where each of our messages is for each member. Every method
// is durable when it returns.
type GroupStore interface {
	// SaveGroupEntries adds entries to the log of group (entries it holds
	// already, by hash, are ignored).
	SaveGroupEntries(ctx context.Context, group domain.GroupID, entries []domain.GroupEntry) error
	// GroupEntries returns every entry of a group's log, in the order
	// stored; domain.ErrUnknownGroup if there is none.
	GroupEntries(ctx context.Context, group domain.GroupID) ([]domain.GroupEntry, error)
	// GroupIDs lists the groups with a log.
	GroupIDs(ctx context.Context) ([]domain.GroupID, error)

	// SaveGroupOutgoing stores our message in the group's history and a
	// queued delivery of it for every member of to.
	SaveGroupOutgoing(ctx context.Context, m domain.GroupMessage, to []domain.Username) error
	// SaveGroupIncoming stores a member's message unless one with the same
	// group and ID is stored already; it reports whether it was new.
	SaveGroupIncoming(ctx context.Context, m domain.GroupMessage) (bool, error)
	// SetGroupDelivery moves the delivery of our message id to member to
	// state s if the domain's rules allow it (domain.MessageState.CanMove).
	// domain.ErrNotFound: no such delivery; domain.ErrInvalidTransition:
	// the move is not allowed (the stored state is kept).
	SetGroupDelivery(ctx context.Context, group domain.GroupID, id domain.MessageID, member domain.Username, s domain.MessageState) (domain.GroupMessage, error)
	// GroupDeliveries lists where our message id is for each member it was
	// sent to, in member name order; domain.ErrNotFound if no such message.
	GroupDeliveries(ctx context.Context, group domain.GroupID, id domain.MessageID) ([]domain.GroupDelivery, error)
	// GroupOutbox lists our group messages (of every group) not yet
	// delivered to member (queued or sent), oldest first.
	GroupOutbox(ctx context.Context, member domain.Username) ([]GroupCopy, error)
	// GroupOutboxMembers lists the members with messages in the group outbox.
	GroupOutboxMembers(ctx context.Context) ([]domain.Username, error)
	// GroupHistory returns at most limit messages of group sent before
	// before (the zero time: the newest), oldest first.
	GroupHistory(ctx context.Context, group domain.GroupID, before time.Time, limit int) ([]domain.GroupMessage, error)
}

// GroupCopy is one of our group messages on its way to one member.
type GroupCopy struct {
	Message domain.GroupMessage
	Member  domain.Username
	State   domain.MessageState
}

// GroupTransport delivers a group's messages to its members and reports,
// per member, how far each got (GroupDeliveryEvent). The first
// implementation (app.PairwiseFanout) writes one copy per member over the
// pairwise MessageLink through an outbox; an MLS implementation could
// replace it without touching the use-cases.
type GroupTransport interface {
	// Deliver stores m for every member of g but us and starts delivering
	// it; it returns once m is durable, not delivered. It is delivered to
	// exactly the members of g: a member removed before is never sent it.
	Deliver(ctx context.Context, g domain.Group, m domain.GroupMessage) error
	// Flush makes the transport try member now (it came online, its key
	// change was accepted).
	Flush(member domain.Username)
	// Run delivers until ctx is done.
	Run(ctx context.Context)
}

// Groups is what a user interface can ask of a client about groups
// (embedded in Client).
type Groups interface {
	// CreateGroup makes a group with us as its admin and members (each must
	// be a known peer whose key we have). It returns its state.
	CreateGroup(ctx context.Context, name string, members []domain.Username) (domain.Group, error)
	// Groups lists our groups (those we are a member of first), each with
	// its unread count.
	Groups(ctx context.Context) ([]GroupView, error)
	// GroupInfo returns one group; domain.ErrUnknownGroup if we have none.
	GroupInfo(ctx context.Context, id domain.GroupID) (GroupView, error)
	// AddMember, RemoveMember, PromoteMember and RenameGroup sign a change
	// as admin (domain.ErrNotGroupAdmin otherwise) and send it to every
	// member; LeaveGroup signs our own leave.
	AddMember(ctx context.Context, id domain.GroupID, name domain.Username) error
	RemoveMember(ctx context.Context, id domain.GroupID, name domain.Username) error
	PromoteMember(ctx context.Context, id domain.GroupID, name domain.Username) error
	RenameGroup(ctx context.Context, id domain.GroupID, name string) error
	LeaveGroup(ctx context.Context, id domain.GroupID) error
	// SendGroup queues text to every member; it is stored before this
	// returns and retried per member until each acknowledges it. A member
	// whose key changed is not sent it until the key is accepted; the
	// others are.
	SendGroup(ctx context.Context, id domain.GroupID, text string) (domain.GroupMessage, error)
	// SendGroupFile offers a file or folder to every member (one transfer
	// each); members whose offer could not be made are in the error.
	SendGroupFile(ctx context.Context, id domain.GroupID, path string) ([]domain.Transfer, error)
	// GroupHistory returns the last limit messages of a group, oldest first.
	GroupHistory(ctx context.Context, id domain.GroupID, limit int) ([]domain.GroupMessage, error)
	// GroupDeliveries lists, for one of our messages, where it is for each member.
	GroupDeliveries(ctx context.Context, id domain.GroupID, msg domain.MessageID) ([]domain.GroupDelivery, error)
	// MarkGroupRead clears a group's unread count.
	MarkGroupRead(ctx context.Context, id domain.GroupID) error
}

// GroupView is a group as a user interface lists it.
type GroupView struct {
	Group  domain.Group
	Member bool // we are a member (false: we left or were removed)
	Unread int
}

// GroupMessageEvent: a group message was stored (received, or written by us).
type GroupMessageEvent struct{ Message domain.GroupMessage }

// GroupDeliveryEvent: one of our group messages moved for one member.
// Delivered and Of count the members that have it and it was sent to.
type GroupDeliveryEvent struct {
	Group         domain.GroupID
	ID            domain.MessageID
	Member        domain.Username
	State         domain.MessageState
	Delivered, Of int
}

// GroupChangedEvent: a group's membership or name changed (or we learnt of
// a new group).
type GroupChangedEvent struct {
	Group  domain.Group
	Member bool
}

// GroupFileEvent: a member's file offer (Transfer, a TransferEvent of its
// own) is for a group.
type GroupFileEvent struct {
	Group    domain.GroupID
	Transfer domain.TransferID
	From     domain.Username
}

func (GroupFileEvent) isEvent()     {}
func (GroupMessageEvent) isEvent()  {}
func (GroupDeliveryEvent) isEvent() {}
func (GroupChangedEvent) isEvent()  {}
