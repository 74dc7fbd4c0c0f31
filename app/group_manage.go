package app

import (
	"context"
	"fmt"

	"github.com/chatx/chatx/domain"
)

// ManageGroup is "make a group with these people", "add Dave", "remove
// Carol", "I leave", "call it ops": each change is signed with our identity
// key on the head of the group's log and sent to every member.
type ManageGroup struct {
	book *GroupBook
}

// NewManageGroup builds the use-case.
func NewManageGroup(book *GroupBook) (*ManageGroup, error) {
	if book == nil {
		return nil, errNilPort("group book")
	}
	return &ManageGroup{book: book}, nil
}

// Create makes a group with us as admin and members (known peers).
func (m *ManageGroup) Create(ctx context.Context, name string, members []domain.Username) (domain.Group, error) {
	if len(members)+1 > domain.MaxGroupMembers {
		return domain.Group{}, fmt.Errorf("%w: %d members", domain.ErrGroupFull, len(members)+1)
	}
	ids := make([]domain.Identity, 0, len(members))
	seen := map[string]bool{m.book.me.Name().Key(): true}
	for _, n := range members {
		if seen[n.Key()] {
			continue
		}
		seen[n.Key()] = true
		id, err := m.book.identityOf(ctx, n)
		if err != nil {
			return domain.Group{}, fmt.Errorf("add %s: %w", n, err)
		}
		ids = append(ids, id)
	}
	return m.book.create(ctx, name, ids)
}

// Add adds a known peer to a group (admins only).
func (m *ManageGroup) Add(ctx context.Context, id domain.GroupID, name domain.Username) error {
	who, err := m.book.identityOf(ctx, name)
	if err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	_, err = m.book.change(ctx, id, domain.GroupChange{Op: domain.GroupAdd, Members: []domain.Identity{who}})
	return err
}

// Remove removes a member (admins only); it is sent nothing after.
func (m *ManageGroup) Remove(ctx context.Context, id domain.GroupID, name domain.Username) error {
	g, err := m.book.state(ctx, id)
	if err != nil {
		return err
	}
	who, ok := g.Member(name)
	if !ok {
		return fmt.Errorf("remove %s from %s: %w", name, g.Name(), domain.ErrNotGroupMember)
	}
	_, err = m.book.change(ctx, id, domain.GroupChange{Op: domain.GroupRemove, Members: []domain.Identity{who}})
	return err
}

// Promote makes a member an admin (admins only).
func (m *ManageGroup) Promote(ctx context.Context, id domain.GroupID, name domain.Username) error {
	g, err := m.book.state(ctx, id)
	if err != nil {
		return err
	}
	who, ok := g.Member(name)
	if !ok {
		return fmt.Errorf("promote %s in %s: %w", name, g.Name(), domain.ErrNotGroupMember)
	}
	_, err = m.book.change(ctx, id, domain.GroupChange{Op: domain.GroupPromote, Members: []domain.Identity{who}})
	return err
}

// Rename gives the group a new name (admins only).
func (m *ManageGroup) Rename(ctx context.Context, id domain.GroupID, name string) error {
	_, err := m.book.change(ctx, id, domain.GroupChange{Op: domain.GroupRename, Name: name})
	return err
}

// Leave signs our own leave; we are sent nothing after.
func (m *ManageGroup) Leave(ctx context.Context, id domain.GroupID) error {
	_, err := m.book.change(ctx, id, domain.GroupChange{Op: domain.GroupLeave})
	return err
}
