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
	t, err := d.book.update(ctx, in.ID, func(t *domain.Transfer, now time.Time) error {
		if t.Direction() != domain.Incoming {
			return fmt.Errorf("transfer %s is ours: only the receiver declines (cancel it instead)", in.ID.Short())
		}
		return t.Decline(now)
	})
	if err != nil {
		return err
	}
	d.tellSender(ctx, t, in.Reason)
	return nil
}

func (d *DeclineTransfer) tellSender(ctx context.Context, t domain.Transfer, reason string) {
	if len(reason) > maxReasonBytes {
		reason = reason[:maxReasonBytes]
	}
	peer, err := d.verify.PeerForSend(ctx, t.Peer())
	if err == nil {
		err = sendEnvelope(ctx, d.link, peer, ports.Envelope{Kind: ports.KindDecline, TransferID: t.ID(), Reason: reason})
	}
	if err != nil {
		slog.Info("decline not delivered", "peer", t.Peer().String(), "transfer", t.ID().Short(), "err", err)
	}
}
