// Package groupsfake is a recording fake of ports.Groups shared by the
// tests of the user-interface adapters. Only tests import it.
package groupsfake

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.Groups = (*Fake)(nil)

// Fake is a recording ports.Groups for the tests of user interfaces:
// each method records its call ("Method arg…") and returns Group and the
// error set with Fail. Embed it in a fake ports.Client.
type Fake struct {
	gmu    sync.Mutex
	gcalls []string
	Group  domain.Group
	gerr   error
}

// Fail makes every later call return err.
func (f *Fake) Fail(err error) {
	f.gmu.Lock()
	f.gerr = err
	f.gmu.Unlock()
}

func (f *Fake) rec(format string, args ...any) error {
	f.gmu.Lock()
	defer f.gmu.Unlock()
	f.gcalls = append(f.gcalls, fmt.Sprintf(format, args...))
	return f.gerr
}

func (f *Fake) GroupCalls() []string {
	f.gmu.Lock()
	defer f.gmu.Unlock()
	return append([]string(nil), f.gcalls...)
}

func (f *Fake) CreateGroup(_ context.Context, name string, members []domain.Username) (domain.Group, error) {
	return f.Group, f.rec("CreateGroup %s %v", name, members)
}

// Groups lists Group (with 2 unread) once a test set one, else none: the
// other tests see no group row.
func (f *Fake) Groups(context.Context) ([]ports.GroupView, error) {
	if f.Group.ID().IsZero() {
		return nil, f.rec("Groups")
	}
	return []ports.GroupView{{Group: f.Group, Member: true, Unread: 2}}, f.rec("Groups")
}
func (f *Fake) GroupInfo(_ context.Context, id domain.GroupID) (ports.GroupView, error) {
	return ports.GroupView{Group: f.Group, Member: true}, f.rec("GroupInfo %s", id)
}
func (f *Fake) AddMember(_ context.Context, id domain.GroupID, n domain.Username) error {
	return f.rec("AddMember %s %s", id, n)
}
func (f *Fake) RemoveMember(_ context.Context, id domain.GroupID, n domain.Username) error {
	return f.rec("RemoveMember %s %s", id, n)
}
func (f *Fake) PromoteMember(_ context.Context, id domain.GroupID, n domain.Username) error {
	return f.rec("PromoteMember %s %s", id, n)
}
func (f *Fake) RenameGroup(_ context.Context, id domain.GroupID, n string) error {
	return f.rec("RenameGroup %s %s", id, n)
}
func (f *Fake) LeaveGroup(_ context.Context, id domain.GroupID) error {
	return f.rec("LeaveGroup %s", id)
}
func (f *Fake) SendGroup(_ context.Context, id domain.GroupID, text string) (domain.GroupMessage, error) {
	m, _ := domain.NewOutgoingGroupMessage(id, f.Group.Epoch(), domain.MustUsername("alice"), text, time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	return m, f.rec("SendGroup %s %s", id, text)
}
func (f *Fake) SendGroupFile(_ context.Context, id domain.GroupID, path string) ([]domain.Transfer, error) {
	return nil, f.rec("SendGroupFile %s %s", id, path)
}
func (f *Fake) GroupHistory(_ context.Context, id domain.GroupID, limit int) ([]domain.GroupMessage, error) {
	m := domain.RestoreGroupMessage(domain.MessageID{1}, id, domain.Epoch{2}, domain.MustUsername("bob"), time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), "yo", domain.Incoming)
	return []domain.GroupMessage{m}, f.rec("GroupHistory %s %d", id, limit)
}
func (f *Fake) GroupDeliveries(_ context.Context, id domain.GroupID, msg domain.MessageID) ([]domain.GroupDelivery, error) {
	return []domain.GroupDelivery{{Member: domain.MustUsername("bob"), State: domain.MessageDelivered}, {Member: domain.MustUsername("carol"), State: domain.MessageSent}},
		f.rec("GroupDeliveries %s %s", id, msg)
}
func (f *Fake) MarkGroupRead(_ context.Context, id domain.GroupID) error {
	return f.rec("MarkGroupRead %s", id)
}
