package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// maxReasonBytes bounds the reason sent with a decline or a cancel.
const maxReasonBytes = 256

// DeclineTransfer is "no, I don't want that file": it records the refusal
// and tells the sender.
type DeclineTransfer struct {
	link   ports.MessageLink
	book   *transferBook
	verify *VerifyContact
}

// DeclineTransferInput names the offer and, optionally, why.
type DeclineTransferInput struct {
	ID     domain.TransferID
	Reason string
}

// NewDeclineTransfer builds the use-case.
func NewDeclineTransfer(link ports.MessageLink, store ports.TransferStore, verify *VerifyContact, clock ports.Clock, events ports.EventSink) (*DeclineTransfer, error) {
	switch {
	case link == nil:
		return nil, errNilPort("message link")
	case store == nil:
		return nil, errNilPort("transfer store")
	case verify == nil:
		return nil, errNilPort("verify use-case")
	case clock == nil:
		return nil, errNilPort("clock")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	return &DeclineTransfer{link: link, book: newTransferBook(store, clock, events), verify: verify}, nil
}

// Handle declines an incoming offer. Telling the sender is best effort: an
// offer it re-sends later is found declined and declined again.
func (d *DeclineTransfer) Handle(ctx context.Context, in DeclineTransferInput) error {
	return declineOffer(ctx, d.book, d.link, d.verify, in)
}

// declineOffer records the refusal (with its reason) and tells the sender.
func declineOffer(ctx context.Context, book *transferBook, link ports.MessageLink, verify *VerifyContact, in DeclineTransferInput) error {
	reason := clampReason(in.Reason)
	t, err := book.update(ctx, in.ID, func(t *domain.Transfer, now time.Time) error {
		if t.Direction() != domain.Incoming {
			return fmt.Errorf("transfer %s is ours: only the receiver declines (cancel it instead)", in.ID.Short())
		}
		return t.DeclineBecause(withReason("declined by you", reason), now)
	})
	if err != nil {
		return err
	}
	tellDeclined(ctx, link, verify, t.Peer(), t.ID(), reason)
	return nil
}

func (d *DeclineTransfer) tellSender(ctx context.Context, t domain.Transfer, reason string) {
	tellDeclined(ctx, d.link, d.verify, t.Peer(), t.ID(), reason)
}

// refuseUnstored tells a sender why its offer was refused before it was
// stored (an unsafe name, too many waiting offers); best effort.
func (d *DeclineTransfer) refuseUnstored(ctx context.Context, to domain.Username, id domain.TransferID, reason string) {
	tellDeclined(ctx, d.link, d.verify, to, id, reason)
}

// tellDeclined sends KindDecline with the reason, best effort.
func tellDeclined(ctx context.Context, link ports.MessageLink, verify *VerifyContact, to domain.Username, id domain.TransferID, reason string) {
	peer, err := verify.PeerForSend(ctx, to)
	if err == nil {
		err = sendEnvelope(ctx, link, peer, ports.Envelope{Kind: ports.KindDecline, TransferID: id, Reason: clampReason(reason)})
	}
	if err != nil {
		slog.Info("decline not delivered", "peer", to.String(), "transfer", id.Short(), "err", err)
	}
}
