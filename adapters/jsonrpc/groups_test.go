package jsonrpc_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/jsonrpc"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

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
	f.Fail(fmt.Errorf("wrapped: %w", domain.ErrNotGroupAdmin))
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
