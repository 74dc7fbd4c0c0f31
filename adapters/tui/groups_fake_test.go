package tui_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// fakeGroups records the group calls of a fakeClient.
type fakeGroups struct {
	gmu    sync.Mutex
	gcalls []string
	group  domain.Group
	gerr   error
}

func (f *fakeGroups) rec(format string, args ...any) error {
	f.gmu.Lock()
	defer f.gmu.Unlock()
	f.gcalls = append(f.gcalls, fmt.Sprintf(format, args...))
	return f.gerr
}

func (f *fakeGroups) GroupCalls() []string {
	f.gmu.Lock()
	defer f.gmu.Unlock()
	return append([]string(nil), f.gcalls...)
}

func (f *fakeGroups) CreateGroup(_ context.Context, name string, members []domain.Username) (domain.Group, error) {
	return f.group, f.rec("CreateGroup %s %v", name, members)
}
func (f *fakeGroups) Groups(context.Context) ([]ports.GroupView, error) {
	if f.group.IsZero() {
		return nil, f.rec("Groups")
	}
	return []ports.GroupView{{Group: f.group, Member: true, Unread: 2}}, f.rec("Groups")
}
func (f *fakeGroups) GroupInfo(_ context.Context, id domain.GroupID) (ports.GroupView, error) {
	return ports.GroupView{Group: f.group, Member: true}, f.rec("GroupInfo %s", id)
}
func (f *fakeGroups) AddMember(_ context.Context, id domain.GroupID, n domain.Username) error {
	return f.rec("AddMember %s %s", id, n)
}
func (f *fakeGroups) RemoveMember(_ context.Context, id domain.GroupID, n domain.Username) error {
	return f.rec("RemoveMember %s %s", id, n)
}
func (f *fakeGroups) PromoteMember(_ context.Context, id domain.GroupID, n domain.Username) error {
	return f.rec("PromoteMember %s %s", id, n)
}
func (f *fakeGroups) RenameGroup(_ context.Context, id domain.GroupID, n string) error {
	return f.rec("RenameGroup %s %s", id, n)
}
func (f *fakeGroups) LeaveGroup(_ context.Context, id domain.GroupID) error {
	return f.rec("LeaveGroup %s", id)
}
func (f *fakeGroups) SendGroup(_ context.Context, id domain.GroupID, text string) (domain.GroupMessage, error) {
	m, _ := domain.NewOutgoingGroupMessage(id, f.group.Epoch(), domain.MustUsername("alice"), text, time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	return m, f.rec("SendGroup %s %s", id, text)
}
func (f *fakeGroups) SendGroupFile(_ context.Context, id domain.GroupID, path string) ([]domain.Transfer, error) {
	return nil, f.rec("SendGroupFile %s %s", id, path)
}
func (f *fakeGroups) GroupHistory(_ context.Context, id domain.GroupID, limit int) ([]domain.GroupMessage, error) {
	m := domain.RestoreGroupMessage(domain.MessageID{1}, id, domain.Epoch{2}, domain.MustUsername("bob"), time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), "yo", domain.Incoming)
	return []domain.GroupMessage{m}, f.rec("GroupHistory %s %d", id, limit)
}
func (f *fakeGroups) GroupDeliveries(_ context.Context, id domain.GroupID, msg domain.MessageID) ([]domain.GroupDelivery, error) {
	return []domain.GroupDelivery{{Member: domain.MustUsername("bob"), State: domain.MessageDelivered}, {Member: domain.MustUsername("carol"), State: domain.MessageSent}},
		f.rec("GroupDeliveries %s %s", id, msg)
}
func (f *fakeGroups) MarkGroupRead(_ context.Context, id domain.GroupID) error {
	return f.rec("MarkGroupRead %s", id)
}
