package app

import (
	"context"
	"fmt"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// MaxIncomingSize refuses to accept offers larger than this many bytes; 0
// means no limit beyond the free space of the downloads folder.
type MaxIncomingSize int64

// AcceptTransfer is "yes, send me that file": it checks the size limit and
// the free space, records the consent and tells the sender.
type AcceptTransfer struct {
	downloads ports.Downloads
	link      ports.MessageLink
	book      *transferBook
	verify    *VerifyContact
	limit     MaxIncomingSize
}

// AcceptTransferInput names the offer.
type AcceptTransferInput struct {
	ID domain.TransferID
}

// NewAcceptTransfer builds the use-case.
func NewAcceptTransfer(downloads ports.Downloads, link ports.MessageLink, store ports.TransferStore, verify *VerifyContact,
	clock ports.Clock, events ports.EventSink, limit MaxIncomingSize) (*AcceptTransfer, error) {
	switch {
	case downloads == nil:
		return nil, errNilPort("downloads")
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
	case limit < 0:
		return nil, fmt.Errorf("app: negative size limit %d", limit)
	}
	return &AcceptTransfer{downloads: downloads, link: link, book: newTransferBook(store, clock, events), verify: verify, limit: limit}, nil
}

// Handle accepts an incoming offer. domain.ErrTooLarge: over the size limit
// (the offer is declined with that reason, and the sender told) or over the
// free space (the offer stays open: the user may free space and accept
// again, or decline it).
func (a *AcceptTransfer) Handle(ctx context.Context, in AcceptTransferInput) error {
	t, err := a.book.get(ctx, in.ID)
	if err != nil {
		return err
	}
	if t.Direction() != domain.Incoming {
		return fmt.Errorf("transfer %s is ours: only the receiver accepts", in.ID.Short())
	}
	if t.State() == domain.TransferOffered {
		total := t.Total()
		if a.limit > 0 && total > int64(a.limit) {
			reason := fmt.Sprintf("%s: %d bytes is over the receiver's limit of %d", domain.ErrTooLarge, total, a.limit)
			if err := declineOffer(ctx, a.book, a.link, a.verify, DeclineTransferInput{ID: in.ID, Reason: reason}); err != nil {
				return fmt.Errorf("transfer %s: %w: over the limit of %d; declining: %w", in.ID.Short(), domain.ErrTooLarge, a.limit, err)
			}
			return fmt.Errorf("transfer %s: %w: %d bytes is over the limit of %d (declined, the sender is told)", in.ID.Short(), domain.ErrTooLarge, total, a.limit)
		}
		free, err := a.downloads.Available()
		if err != nil {
			return fmt.Errorf("free space of the downloads folder: %w", err)
		}
		if total > free {
			return fmt.Errorf("transfer %s: %w", in.ID.Short(), &noSpaceError{need: total, free: free})
		}
		t, err = a.book.update(ctx, in.ID, func(t *domain.Transfer, now time.Time) error { return t.Accept(now) })
		if err != nil {
			return err
		}
	}
	if t.State() != domain.TransferAccepted {
		return fmt.Errorf("transfer %s: %w", in.ID.Short(), &domain.TransitionError{What: "transfer " + in.ID.Short(), From: t.State().String(), To: domain.TransferAccepted.String()})
	}
	return a.tellSender(ctx, t)
}

// tellSender sends KindAccept; when it fails the transfer stays accepted
// and the acceptance is sent again when the peer comes online.
func (a *AcceptTransfer) tellSender(ctx context.Context, t domain.Transfer) error {
	peer, err := a.verify.PeerForSend(ctx, t.Peer())
	if err == nil {
		err = sendEnvelope(ctx, a.link, peer, ports.Envelope{Kind: ports.KindAccept, TransferID: t.ID()})
	}
	if err != nil {
		return fmt.Errorf("accepted transfer %s, telling %s failed (will retry when online): %w", t.ID().Short(), t.Peer(), err)
	}
	return nil
}

// PeerOnline sends again the acceptances the peer may have missed.
func (a *AcceptTransfer) PeerOnline(ctx context.Context, peer domain.Username) {
	all, err := a.book.store.List(ctx)
	if err != nil {
		return
	}
	for _, t := range all {
		if t.Direction() == domain.Incoming && t.State() == domain.TransferAccepted && t.Peer().Equal(peer) {
			_ = a.tellSender(ctx, t)
		}
	}
}

// noSpaceError: an offer does not fit the free space of the downloads
// folder. It is domain.ErrTooLarge.
type noSpaceError struct{ need, free int64 }

func (e *noSpaceError) reason() string {
	return fmt.Sprintf("%s: %d bytes, %d free in the receiver's downloads folder", domain.ErrTooLarge, e.need, e.free)
}
func (e *noSpaceError) Error() string {
	return fmt.Sprintf("%s: %d bytes, %d free in the downloads folder", domain.ErrTooLarge, e.need, e.free)
}
func (e *noSpaceError) Unwrap() error { return domain.ErrTooLarge }
