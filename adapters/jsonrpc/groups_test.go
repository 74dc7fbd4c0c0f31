package jsonrpc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/jsonrpc"
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

func TestGroupMethods(t *testing.T) {
	t.Parallel()
	f := newFake()
	gid := domain.GroupID{0xab}
	h := start(t, f, jsonrpc.Options{})
	id := gid.String()
	var created struct{ ID string }
	h.result("createGroup", map[string]any{"name": "team", "members": []string{"Bob", "carol"}}, &created)
	h.result("addMember", map[string]any{"id": id, "name": "Dave"}, nil)
	h.result("removeMember", map[string]any{"id": id, "name": "carol"}, nil)
	h.result("leaveGroup", map[string]any{"id": id}, nil)
	var sent struct{ ID, Group, From, Text string }
	h.result("send", map[string]any{"group": id, "text": "hello all"}, &sent)
	if sent.Group != id || sent.From != "alice" || sent.Text != "hello all" || len(sent.ID) != 32 {
		t.Errorf("send to group = %+v", sent)
	}
	var hist []struct{ Group, From, Text string }
	h.result("history", map[string]any{"group": id, "limit": 5}, &hist)
	if len(hist) != 1 || hist[0].Group != id || hist[0].From != "bob" || hist[0].Text != "yo" {
		t.Errorf("group history = %+v", hist)
	}
	h.result("sendFile", map[string]any{"group": id, "path": "/tmp/x"}, nil)
	var del struct {
		Delivered, Of int
		Members       []struct{ Member, State string }
	}
	h.result("groupDeliveries", map[string]any{"id": id, "message": domain.MessageID{9}.String()}, &del)
	if del.Delivered != 1 || del.Of != 2 || len(del.Members) != 2 {
		t.Errorf("deliveries = %+v", del)
	}
	want := []string{
		"CreateGroup team [bob carol]", "AddMember " + id + " dave", "RemoveMember " + id + " carol", "LeaveGroup " + id,
		"SendGroup " + id + " hello all", "GroupHistory " + id + " 5", "SendGroupFile " + id + " /tmp/x",
		"GroupDeliveries " + id + " " + domain.MessageID{9}.String(),
	}
	got := f.GroupCalls()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls\n got %q\nwant %q", got, want)
	}
	if code := h.errCode("groupInfo", map[string]any{"id": "zz"}); code != jsonrpc.CodeInvalidParams {
		t.Errorf("bad id: code %d", code)
	}
	f.gmu.Lock()
	f.gerr = fmt.Errorf("wrapped: %w", domain.ErrNotGroupAdmin)
	f.gmu.Unlock()
	if code := h.errCode("removeMember", map[string]any{"id": id, "name": "bob"}); code != jsonrpc.CodeNotGroupAdmin {
		t.Errorf("not admin: code %d, want %d", code, jsonrpc.CodeNotGroupAdmin)
	}
}

func TestGroupMessageNotificationCarriesGroup(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := start(t, f, jsonrpc.Options{})
	gid := domain.GroupID{0xcd}
	m := domain.RestoreGroupMessage(domain.MessageID{3}, gid, domain.Epoch{4}, domain.MustUsername("bob"), time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), "hey", domain.Incoming)
	f.events <- ports.GroupMessageEvent{Message: m}
	n := h.note("message")
	if want := `"group":"` + gid.String() + `"`; !strings.Contains(string(n.Params), want) {
		t.Errorf("message notification %s lacks %s", n.Params, want)
	}
}
