package jsonrpc_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/jsonrpc"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func TestContactMethods(t *testing.T) {
	t.Parallel()
	f := newFake()
	eve, bob := identity("eve"), identity("bob")
	f.SetRequests(ports.RequestView{Request: domain.Request{From: eve, Items: 3, Offers: 1, Bytes: 300, First: t0, Last: t0},
		Preview: "hi [red]x"})
	f.SetContacts(domain.Contact{Identity: bob, Relation: domain.RelationContact, Nickname: "Bobby", Verified: true})
	h := start(t, f, jsonrpc.Options{})

	var reqs []map[string]any
	h.result("requests", nil, &reqs)
	want := map[string]any{"name": "eve", "fingerprint": eve.Fingerprint().String(), "messages": float64(2), "offers": float64(1),
		"bytes": float64(300), "first": "2026-11-24T12:00:00Z", "preview": "hi [red]x"}
	if len(reqs) != 1 {
		t.Fatalf("requests = %v", reqs)
	}
	for k, v := range want {
		if reqs[0][k] != v {
			t.Errorf("request %s = %v, want %v", k, reqs[0][k], v)
		}
	}
	var cs []map[string]any
	h.result("contacts", nil, &cs)
	if len(cs) != 1 || cs[0]["name"] != "bob" || cs[0]["nickname"] != "Bobby" || cs[0]["verified"] != true {
		t.Fatalf("contacts = %v", cs)
	}

	for _, c := range []struct{ method, call string }{
		{"acceptRequest", "AcceptRequest eve"},
		{"declineRequest", "DeclineRequest eve"},
		{"block", "Block eve"},
		{"unblock", "Unblock eve"},
		{"addContact", "AddContact eve"},
	} {
		var ok bool
		h.result(c.method, map[string]any{"name": "Eve"}, &ok)
		if !ok || !slices.Contains(f.ContactCalls(), c.call) {
			t.Errorf("%s: result %v, calls %v", c.method, ok, f.ContactCalls())
		}
		if code := h.errCode(c.method, nil); code != jsonrpc.CodeInvalidParams {
			t.Errorf("%s without a name: code %d", c.method, code)
		}
	}
	var ok bool
	h.result("setNickname", map[string]any{"name": "bob", "nickname": "B."}, &ok)
	if !slices.Contains(f.ContactCalls(), "SetNickname bob B.") {
		t.Errorf("setNickname calls %v", f.ContactCalls())
	}
	h.result("setStatus", map[string]any{"status": "busy", "text": "in a meeting"}, &ok)
	if s := f.Status(); s.Availability != domain.Busy || s.Text != "in a meeting" {
		t.Errorf("status %+v after setStatus", s)
	}
	if code := h.errCode("setStatus", map[string]any{"status": "asleep"}); code != jsonrpc.CodeInvalidValue {
		t.Errorf("unknown status: code %d", code)
	}
	if code := h.errCode("setStatus", map[string]any{"status": "away", "text": strings.Repeat("x", 141)}); code != jsonrpc.CodeInvalidValue {
		t.Errorf("status text of 141 characters: code %d", code)
	}
}

func TestContactErrorsAndNotifications(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.FailContacts(domain.ErrBlocked)
	h := start(t, f, jsonrpc.Options{})
	if code := h.errCode("addContact", map[string]any{"name": "eve"}); code != jsonrpc.CodeBlocked {
		t.Errorf("addContact of a blocked name: code %d, want %d", code, jsonrpc.CodeBlocked)
	}
	eve := identity("eve")
	f.events <- ports.RequestEvent{Request: ports.RequestView{Request: domain.Request{From: eve, Items: 1, Bytes: 70, First: t0, Last: t0}, Preview: "hello"}}
	var req map[string]any
	if err := json.Unmarshal(h.note("request").Params, &req); err != nil {
		t.Fatal(err)
	}
	if req["name"] != "eve" || req["preview"] != "hello" || req["messages"] != float64(1) {
		t.Errorf("request notification %v", req)
	}
	f.events <- ports.ContactEvent{Name: domain.MustUsername("bob"), Relation: domain.RelationContact, Status: domain.Status{Availability: domain.Away, Text: "lunch"}}
	var ce map[string]any
	if err := json.Unmarshal(h.note("contact").Params, &ce); err != nil {
		t.Fatal(err)
	}
	if ce["name"] != "bob" || ce["relation"] != "contact" || ce["status"] != "away" || ce["statusText"] != "lunch" {
		t.Errorf("contact notification %v", ce)
	}
	f.events <- ports.RefusedEvent{Peer: domain.MustUsername("bob"), Reason: ports.RefusedSlowDown, RetryAfter: 1500 * time.Millisecond}
	var rf map[string]any
	if err := json.Unmarshal(h.note("refused").Params, &rf); err != nil {
		t.Fatal(err)
	}
	if rf["peer"] != "bob" || rf["reason"] != "slow-down" || rf["retryAfterMs"] != float64(1500) {
		t.Errorf("refused notification %v", rf)
	}
}

func TestPeerViewContactFields(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.peers = []ports.PeerView{{Peer: domain.Peer{Identity: identity("bob"), Online: true}, Contact: true, Nickname: "Bobby",
		Status: domain.Status{Availability: domain.Busy, Text: "coding"}}, {Peer: domain.Peer{Identity: identity("eve")}, Blocked: true}}
	h := start(t, f, jsonrpc.Options{})
	var got []map[string]any
	h.result("listPeers", nil, &got)
	if len(got) != 2 || got[0]["contact"] != true || got[0]["nickname"] != "Bobby" || got[0]["status"] != "busy" ||
		got[0]["statusText"] != "coding" || got[0]["blocked"] != false || got[1]["blocked"] != true || got[1]["contact"] != false {
		t.Fatalf("listPeers = %v", got)
	}
}
