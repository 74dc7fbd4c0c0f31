package ports

import (
	"context"

	"github.com/chatx/chatx/domain"
)

// StateMark is a state one of our messages is to move to.
type StateMark struct {
	ID    domain.MessageID
	State domain.MessageState
}

// MessageMarks records the state changes of our messages in bulk, lazily:
// the one place where a MessageStore acknowledges a write before it is
// durable.
//
// Why that is safe: a mark ("sent", "delivered", "read") only records what
// the peer told us. If it is lost (a power cut before the store's next
// durable write; a killed process loses nothing, the kernel holds the
// store's log), the message is found undelivered in the outbox and written
// again, the peer deduplicates it by ID and acknowledges it again, and the
// mark is recorded then. Nothing the user wrote is lost and nothing is
// shown twice; the cost is one repeated write on the link. So the sender
// need not wait for a mark to report the change it records: "delivered"
// is the peer's word, and the message is durable there already
// (docs/peer-protocol.md §6.1 lists what a crash leaves).
type MessageMarks interface {
	// MarkStates moves each listed message of ours to its state where the
	// domain's rules allow it (as SetState does), all in one write, and
	// returns the marks that moved a message, in the order given. Unknown
	// messages and refused moves (a repeat, an overtaken state) are left
	// out, not errors. Each message appears at most once in marks.
	// It returns once the marks are committed, before they are durable:
	// see the type's comment.
	MarkStates(ctx context.Context, marks []StateMark) ([]StateMark, error)
}

// OutboxStaging lets the sender write a message to its peer while the
// store makes it durable, instead of after: send → delivered then costs
// one disk flush of the two sides' time, not the sum of both.
//
// Why that is safe: committed is called once the message is committed to
// the store's log — a killed process keeps it (the kernel holds the log),
// so it is in the outbox after a restart and written again, which the
// peer deduplicates. Only a power cut in the fraction of a millisecond
// before the flush can lose it from our history while the peer has it;
// the user was not told it was sent (SaveOutgoingStaged had not returned),
// so nothing the user saw accepted is lost.
type OutboxStaging interface {
	// SaveOutgoingStaged is SaveOutgoing; if committed is not nil it is
	// called once the message is stored and before it is durable, if it
	// is stored at all (not when the save fails before; a flush that
	// fails after it still makes SaveOutgoingStaged return its error).
	// committed must not block or call the store. SaveOutgoingStaged is
	// durable when it returns nil.
	SaveOutgoingStaged(ctx context.Context, m domain.Message, committed func()) error
}
