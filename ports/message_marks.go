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
// shown twice; the cost is one repeated write on the link.
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
