package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// SendGroupFile is "send this file to the group": one offer, through
// TransferFile, to each member, who accepts or declines it on its own; the
// sender follows each transfer's progress as for one-to-one files. Each
// member is also told which group the offer is for (KindGroupFile).
type SendGroupFile struct {
	book     *GroupBook
	transfer *TransferFile
}

// NewSendGroupFile builds the use-case.
func NewSendGroupFile(book *GroupBook, transfer *TransferFile) (*SendGroupFile, error) {
	switch {
	case book == nil:
		return nil, errNilPort("group book")
	case transfer == nil:
		return nil, errNilPort("transfer use-case")
	}
	return &SendGroupFile{book: book, transfer: transfer}, nil
}

// Handle offers path to every member but us. It returns the transfers
// made; members whose offer could not be made (key changed, unknown) are
// joined in the error, the others are offered all the same.
func (s *SendGroupFile) Handle(ctx context.Context, id domain.GroupID, path string) ([]domain.Transfer, error) {
	g, err := s.book.state(ctx, id)
	if err != nil {
		return nil, err
	}
	if !g.IsMember(s.book.me.Name()) {
		return nil, errNotMember(g)
	}
	var out []domain.Transfer
	var errs error
	for _, m := range g.Members() {
		if m.Name().Equal(s.book.me.Name()) {
			continue
		}
		t, err := s.transfer.Handle(ctx, TransferFileInput{To: m.Name(), Path: path})
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("offer to %s: %w", m.Name(), err))
			continue
		}
		out = append(out, t)
		s.book.write(ctx, m.Name(), ports.Envelope{Kind: ports.KindGroupFile, Group: groupRefWire{group: id, id: t.ID()}.encode()})
	}
	return out, errs
}

// fileOffered tells the user that a member's offer is for a group.
func (b *GroupBook) fileOffered(ctx context.Context, from domain.Identity, id domain.GroupID, t domain.TransferID) error {
	g, err := b.state(ctx, id)
	if err != nil {
		return err
	}
	if m, ok := g.Member(from.Name()); !ok || !m.SameKey(from.PublicKey()) {
		return fmt.Errorf("group file from %s: %w", from.Name(), domain.ErrNotGroupMember)
	}
	b.events.Publish(ports.GroupFileEvent{Group: id, Transfer: t, From: from.Name()})
	return nil
}
