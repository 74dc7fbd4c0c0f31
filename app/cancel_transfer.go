package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// CancelTransfer is "stop that transfer", from either side: it records the
// cancellation, stops the bytes (the sender's stream or the receiver's
// writes), removes the receiver's part files, and tells the peer.
type CancelTransfer struct {
	link      ports.MessageLink
	downloads ports.Downloads
	book      *transferBook
	verify    *VerifyContact
	sender    *TransferFile
	receiver  *ReceiveFile
	mail      *mailDelivery // nil: no offline delivery
}

// CancelTransferInput names the transfer and, optionally, why.
type CancelTransferInput struct {
	ID     domain.TransferID
	Reason string
}

// NewCancelTransfer builds the use-case; it stops streams run by sender and
// receiver.
func NewCancelTransfer(link ports.MessageLink, downloads ports.Downloads, store ports.TransferStore, verify *VerifyContact,
	sender *TransferFile, receiver *ReceiveFile, clock ports.Clock, events ports.EventSink) (*CancelTransfer, error) {
	switch {
	case link == nil:
		return nil, errNilPort("message link")
	case downloads == nil:
		return nil, errNilPort("downloads")
	case store == nil:
		return nil, errNilPort("transfer store")
	case verify == nil:
		return nil, errNilPort("verify use-case")
	case sender == nil:
		return nil, errNilPort("transfer use-case")
	case receiver == nil:
		return nil, errNilPort("receive use-case")
	case clock == nil:
		return nil, errNilPort("clock")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	return &CancelTransfer{link: link, downloads: downloads, book: newTransferBook(store, clock, events),
		verify: verify, sender: sender, receiver: receiver}, nil
}

// Handle cancels a transfer the user no longer wants.
func (c *CancelTransfer) Handle(ctx context.Context, in CancelTransferInput) error {
	t, err := c.cancel(ctx, in.ID, withReason("cancelled by you", in.Reason), func(domain.Transfer) error { return nil })
	if err != nil {
		return err
	}
	c.tellPeer(ctx, t, in.Reason)
	return nil
}

// tellPeer sends KindCancel, best effort: a peer that missed it learns it
// when it offers or streams the transfer again.
func (c *CancelTransfer) tellPeer(ctx context.Context, t domain.Transfer, reason string) {
	reason = clampReason(reason)
	peer, err := c.verify.PeerForSend(ctx, t.Peer())
	if err == nil {
		err = sendEnvelope(ctx, c.link, peer, ports.Envelope{Kind: ports.KindCancel, TransferID: t.ID(), Reason: reason})
	}
	if err != nil {
		slog.Info("cancel not delivered", "peer", t.Peer().String(), "transfer", t.ID().Short(), "err", err)
		if c.mail != nil {
			c.mail.parkCancel(ctx, t, reason) // the offer may wait in the peer's mailbox: so does its cancel
		}
	}
}

// Cancelled takes the peer's KindCancel, with the reason it gave.
func (c *CancelTransfer) Cancelled(ctx context.Context, from domain.Identity, id domain.TransferID, reason string) error {
	_, err := c.cancel(ctx, id, withReason("cancelled by "+from.Name().String(), reason), func(t domain.Transfer) error {
		if !t.Peer().Equal(from.Name()) {
			return fmt.Errorf("%w: transfer %s is not with %s", domain.ErrNotFound, id.Short(), from.Name())
		}
		return nil
	})
	return err
}

// withReason joins who did something and the reason they gave, if any:
// "cancelled by bob: wrong file".
func withReason(who, reason string) string {
	if reason = strings.TrimSpace(reason); reason != "" {
		return who + ": " + reason
	}
	return who
}

func (c *CancelTransfer) cancel(ctx context.Context, id domain.TransferID, reason string, check func(domain.Transfer) error) (domain.Transfer, error) {
	t, err := c.book.update(ctx, id, func(t *domain.Transfer, now time.Time) error {
		if err := check(*t); err != nil {
			return err
		}
		return t.CancelBecause(reason, now)
	})
	if err != nil {
		return t, err
	}
	if t.Direction() == domain.Outgoing {
		c.sender.stop(id)
	} else {
		c.receiver.cancel(id)
		for i := range t.Manifest().Files {
			if err := c.downloads.RemovePart(id, partPath(t.Manifest(), i)); err != nil {
				slog.Warn("remove part of cancelled transfer", "transfer", id.Short(), "err", err)
			}
		}
	}
	slog.Info("transfer cancelled", "peer", t.Peer().String(), "transfer", id.Short())
	return t, nil
}
