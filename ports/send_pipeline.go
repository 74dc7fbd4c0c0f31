package ports

import (
	"context"

	"github.com/chatx/chatx/domain"
)

// SendPipeline lets a front end have many sends in flight at once and keep
// their order (a script writing sends without waiting for each answer).
type SendPipeline interface {
	// StartSend is Send in two steps. It checks the text and the recipient
	// and gives the message its place in the order of our messages before
	// it returns (errors as Send's); wait then returns what Send returns,
	// once the message is stored in the outbox. Messages started one after
	// another are reported and written to their peers in that order,
	// however their store writes finish. wait must be called once.
	StartSend(ctx context.Context, to domain.Username, text string) (wait func() (domain.Message, error), err error)
}
