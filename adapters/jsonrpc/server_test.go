package jsonrpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/jsonrpc"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func TestWhoami(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := start(t, f, jsonrpc.Options{})
	var got struct {
		Name, PeerID, Fingerprint string
		Endpoints                 struct{ Link, File []string }
	}
	h.result("whoami", nil, &got)
	if got.Name != "alice" || got.PeerID != string(f.me.PeerID()) || got.Fingerprint != f.me.Fingerprint().String() {
		t.Errorf("whoami = %+v", got)
	}
	if len(got.Endpoints.Link) != 1 || got.Endpoints.File[0] != "127.0.0.1:7002" {
		t.Errorf("endpoints = %+v", got.Endpoints)
	}
	if code := h.errCode("whoami", map[string]any{"extra": 1}); code != jsonrpc.CodeInvalidParams {
		t.Errorf("whoami with an unknown param: %d", code)
	}
}

func TestListPeers(t *testing.T) {
	t.Parallel()
	f := newFake()
	bob := identity("bob")
	f.peers = []ports.PeerView{
		{Peer: domain.Peer{Identity: bob, Online: true, LastSeen: t0, Endpoints: domain.Endpoints{Link: []string{"10.0.0.2:1"}, NAT: domain.NATEndpointIndependent}}, Verified: true, Unread: 3,
			Path: domain.Path{Kind: domain.PathDirect, Transport: domain.TransportQUIC, RTT: 1500 * time.Microsecond}},
		{Peer: domain.Peer{Identity: identity("carol")}, KeyChanged: true},
	}
	h := start(t, f, jsonrpc.Options{})
	var got []map[string]any
	h.result("listPeers", nil, &got)
	if len(got) != 2 {
		t.Fatalf("listPeers = %v", got)
	}
	want0 := map[string]any{"name": "bob", "peerId": string(bob.PeerID()), "fingerprint": bob.Fingerprint().String(),
		"online": true, "lastSeen": "2026-11-24T12:00:00Z", "verified": true, "keyChanged": false, "unread": float64(3),
		"path": "direct", "transport": "quic", "rttMs": 1.5, "nat": "endpoint-independent"}
	for k, v := range want0 {
		if got[0][k] != v {
			t.Errorf("peer 0 %s = %v, want %v", k, got[0][k], v)
		}
	}
	if got[1]["lastSeen"] != nil || got[1]["online"] != false || got[1]["keyChanged"] != true || got[1]["path"] != nil || got[1]["transport"] != nil {
		t.Errorf("peer 1 = %v", got[1])
	}
	eps := got[1]["endpoints"].(map[string]any)
	if eps["link"] == nil || eps["file"] == nil {
		t.Errorf("empty endpoints must be arrays, got %v", eps)
	}
}

func TestSend(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := start(t, f, jsonrpc.Options{})
	var got struct{ ID, From, To, Peer, Direction, SentAt, Text, State string }
	h.result("send", map[string]any{"to": "Bob", "text": "hi [red]there\x1b"}, &got)
	if len(got.ID) != 32 || got.From != "alice" || got.To != "bob" || got.Peer != "bob" || got.Direction != "out" ||
		got.SentAt != "2026-11-24T12:00:00Z" || got.Text != "hi [red]there\x1b" || got.State != "queued" {
		t.Errorf("send = %+v", got)
	}
	if _, err := domain.ParseMessageID(got.ID); err != nil {
		t.Errorf("message id %q: %v", got.ID, err)
	}
	if calls := f.Calls(); len(calls) != 1 || calls[0] != "Send bob hi [red]there\x1b" {
		t.Errorf("calls = %q", calls)
	}
	if l := h.call("send", map[string]any{"to": "bob", "text": "<3 & >"}); !strings.Contains(string(l.Raw), `"text":"<3 & >"`) {
		t.Errorf("text is escaped beyond JSON's needs: %s", l.Raw)
	}
}

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	old, nw := identity("bob").Fingerprint(), identity("mallory").Fingerprint()
	kc := &domain.KeyChangedError{Name: domain.MustUsername("bob"), Old: old, New: nw}
	cases := []struct {
		name   string
		err    error
		params map[string]any
		code   int
	}{
		{"key changed", fmt.Errorf("send: %w", kc), nil, jsonrpc.CodeKeyChanged},
		{"unknown peer", fmt.Errorf("lookup: %w", domain.ErrUnknownPeer), nil, jsonrpc.CodeUnknownPeer},
		{"offline", domain.ErrPeerOffline, nil, jsonrpc.CodePeerOffline},
		{"internal", errors.New("disk on fire"), nil, jsonrpc.CodeInternalError},
		{"cancelled", context.Canceled, nil, jsonrpc.CodeCancelled},
		{"bad name", nil, map[string]any{"to": "x", "text": "hi"}, jsonrpc.CodeInvalidName},
		{"bad name chars", nil, map[string]any{"to": "bob\x1b", "text": "hi"}, jsonrpc.CodeInvalidName},
		{"empty text", nil, map[string]any{"to": "bob", "text": ""}, jsonrpc.CodeInvalidMessage},
		{"long text", nil, map[string]any{"to": "bob", "text": strings.Repeat("a", domain.MaxMessageBytes+1)}, jsonrpc.CodeInvalidMessage},
		{"missing text", nil, map[string]any{"to": "bob"}, jsonrpc.CodeInvalidParams},
		{"missing to", nil, map[string]any{"text": "hi"}, jsonrpc.CodeInvalidParams},
		{"text not a string", nil, map[string]any{"to": "bob", "text": 5}, jsonrpc.CodeInvalidParams},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.sendErr = tc.err
			h := start(t, f, jsonrpc.Options{})
			params := tc.params
			if params == nil {
				params = map[string]any{"to": "bob", "text": "hello"}
			}
			l := h.call("send", params)
			if l.Error == nil || l.Error.Code != tc.code {
				t.Fatalf("send = %s, want code %d", l.Raw, tc.code)
			}
			if tc.err != nil && !strings.Contains(l.Error.Message, tc.err.Error()) {
				t.Errorf("message %q does not say %q", l.Error.Message, tc.err)
			}
			if tc.code == jsonrpc.CodeKeyChanged {
				var data map[string]string
				if err := json.Unmarshal(l.Error.Data, &data); err != nil || data["name"] != "bob" || data["old"] != old.String() || data["new"] != nw.String() {
					t.Errorf("key changed data = %s (%v)", l.Error.Data, err)
				}
			}
			if tc.err == nil && len(f.Calls()) != 0 {
				t.Errorf("the client was called with invalid input: %q", f.Calls())
			}
		})
	}
}

func TestHistoryAndSearch(t *testing.T) {
	t.Parallel()
	f := newFake()
	bob := domain.MustUsername("bob")
	m1, _ := domain.NewIncomingMessage(domain.NewMessageID(), bob, domain.MustUsername("alice"), t0, "first")
	m2, _ := domain.NewOutgoingMessage(domain.MustUsername("alice"), bob, "second", t0.Add(time.Minute))
	f.history = []domain.Message{m1, m2}
	f.found = []domain.Message{m2}
	h := start(t, f, jsonrpc.Options{})

	var hist []struct{ ID, From, Direction, Text, State, SentAt string }
	h.result("history", map[string]any{"with": "bob", "limit": 10}, &hist)
	if len(hist) != 2 || hist[0].Text != "first" || hist[0].Direction != "in" || hist[0].State != "delivered" ||
		hist[1].Text != "second" || hist[1].SentAt != "2026-11-24T12:01:00Z" || hist[0].ID != m1.ID().String() {
		t.Errorf("history = %+v", hist)
	}
	h.result("history", map[string]any{"with": "bob"}, &hist)
	var found []struct{ Text string }
	h.result("search", map[string]any{"text": "sec"}, &found)
	if len(found) != 1 || found[0].Text != "second" {
		t.Errorf("search = %+v", found)
	}
	calls := f.Calls()
	if want := []string{"History bob 10", "History bob 50", "Search sec 50"}; strings.Join(calls, "|") != strings.Join(want, "|") {
		t.Errorf("calls = %q, want %q", calls, want)
	}
	for _, p := range []map[string]any{{"with": "bob", "limit": -1}, {"with": "bob", "limit": 100000}, {"with": "bob", "limit": "ten"}, {}} {
		if code := h.errCode("history", p); code != jsonrpc.CodeInvalidParams {
			t.Errorf("history %v: code %d", p, code)
		}
	}
	if code := h.errCode("search", map[string]any{"text": "  "}); code != jsonrpc.CodeInvalidParams {
		t.Errorf("empty search: code %d", code)
	}
	var empty []any
	f.mu.Lock()
	f.found = nil
	f.mu.Unlock()
	l := h.call("search", map[string]any{"text": "nothing"})
	if string(l.Result) != "[]" {
		t.Errorf("no matches must be [], got %s", l.Result)
	}
	_ = empty
}

func TestSendFileAndTransfers(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := start(t, f, jsonrpc.Options{})
	var tr struct {
		ID, Peer, Direction, Name, State string
		Folder                           bool
		FileCount                        int
		Files                            []struct {
			Path   string
			Size   int64
			SHA256 string
		}
		Bytes, Total int64
		Rate, ETA    float64
		CreatedAt    string
	}
	h.result("sendFile", map[string]any{"to": "bob", "path": "/home/alice/photo.jpg"}, &tr)
	if tr.ID != (domain.TransferID{1, 2, 3}).String() || tr.Peer != "bob" || tr.Direction != "out" || tr.Name != "photo.jpg" ||
		tr.State != "offered" || tr.Folder || tr.FileCount != 1 || tr.Total != 1000 || tr.CreatedAt != "2026-11-24T12:00:00Z" {
		t.Errorf("sendFile = %+v", tr)
	}
	if len(tr.Files) != 1 || tr.Files[0].Path != "photo.jpg" || len(tr.Files[0].SHA256) != 64 {
		t.Errorf("files = %+v", tr.Files)
	}
	if got := f.Calls(); got[0] != "SendFile bob /home/alice/photo.jpg" {
		t.Errorf("calls = %q", got)
	}

	f.mu.Lock()
	f.fileErr = fmt.Errorf("scan /nope: %w", fs.ErrNotExist)
	f.mu.Unlock()
	if code := h.errCode("sendFile", map[string]any{"to": "bob", "path": "/nope"}); code != jsonrpc.CodeNotFound {
		t.Errorf("missing file: code %d", code)
	}
	f.mu.Lock()
	f.fileErr = fmt.Errorf("scan: %w", domain.ErrUnsafePath)
	f.mu.Unlock()
	if code := h.errCode("sendFile", map[string]any{"to": "bob", "path": "/x"}); code != jsonrpc.CodeUnsafePath {
		t.Errorf("unsafe path: code %d", code)
	}
	if code := h.errCode("sendFile", map[string]any{"to": "bob"}); code != jsonrpc.CodeInvalidParams {
		t.Errorf("no path: code %d", code)
	}

	m, _ := domain.NewManifest("docs", []domain.FileEntry{{Path: "a/b.txt", Size: 10}, {Path: "c.txt", Size: 5}})
	in, _ := domain.NewTransfer(domain.TransferID{9}, domain.MustUsername("carol"), domain.Incoming, m, t0)
	_ = in.Accept(t0)
	_ = in.Start(3, t0)
	f.mu.Lock()
	f.transfer = []domain.Transfer{in}
	f.mu.Unlock()
	var list []map[string]any
	h.result("transfers", nil, &list)
	if len(list) != 1 || list[0]["state"] != "in_progress" || list[0]["bytes"] != float64(3) || list[0]["total"] != float64(15) ||
		list[0]["folder"] != true || list[0]["direction"] != "in" || len(list[0]["files"].([]any)) != 2 {
		t.Errorf("transfers = %v", list)
	}
}

func TestTransferActions(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := start(t, f, jsonrpc.Options{})
	id := domain.TransferID{0xab, 0xcd}
	for _, m := range []string{"acceptTransfer", "rejectTransfer", "declineTransfer", "cancelTransfer"} {
		var ok bool
		h.result(m, map[string]any{"id": id.String()}, &ok)
		if !ok {
			t.Errorf("%s result false", m)
		}
	}
	<-f.accepted
	want := []string{"AcceptTransfer " + id.String(), "DeclineTransfer " + id.String(), "DeclineTransfer " + id.String(), "CancelTransfer " + id.String()}
	if got := f.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("calls = %q", got)
	}
	for _, bad := range []any{"xyz", "abcd", strings.Repeat("0", 34), 12, nil} {
		p := map[string]any{"id": bad}
		if bad == nil {
			p = map[string]any{}
		}
		if code := h.errCode("cancelTransfer", p); code != jsonrpc.CodeInvalidParams {
			t.Errorf("cancelTransfer %v: code %d", bad, code)
		}
	}
	f.mu.Lock()
	f.actErr = &domain.TransitionError{What: "transfer", From: "completed", To: "cancelled"}
	f.mu.Unlock()
	if code := h.errCode("cancelTransfer", map[string]any{"id": id.String()}); code != jsonrpc.CodeInvalidState {
		t.Errorf("invalid move: code %d", code)
	}
	f.mu.Lock()
	f.actErr = fmt.Errorf("transfer %s: %w", id.Short(), domain.ErrNotFound)
	f.mu.Unlock()
	if code := h.errCode("rejectTransfer", map[string]any{"id": id.String()}); code != jsonrpc.CodeNotFound {
		t.Errorf("unknown transfer: code %d", code)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	f := newFake()
	bob := identity("bob")
	pending := identity("mallory").Fingerprint()
	f.safety = ports.SafetyView{Name: bob.Name(), SafetyNumber: domain.SafetyNumber(f.me.PublicKey(), bob.PublicKey()),
		Ours: f.me.Fingerprint(), Theirs: bob.Fingerprint(), PendingKey: &pending}
	h := start(t, f, jsonrpc.Options{})
	var got struct {
		Name, SafetyNumber, Ours, Theirs string
		Verified                         bool
		PendingKey                       *string
	}
	h.result("verify", map[string]any{"name": "bob"}, &got)
	if got.Name != "bob" || got.SafetyNumber != f.safety.SafetyNumber || got.Ours != f.me.Fingerprint().String() ||
		got.Theirs != bob.Fingerprint().String() || got.PendingKey == nil || *got.PendingKey != pending.String() {
		t.Errorf("verify = %+v", got)
	}
	h.result("setVerified", map[string]any{"name": "bob", "verified": true}, nil)
	h.result("setVerified", map[string]any{"name": "bob", "verified": false}, nil)
	h.result("acceptKeyChange", map[string]any{"name": "bob"}, nil)
	h.result("typing", map[string]any{"to": "bob"}, nil)
	h.result("markRead", map[string]any{"with": "bob"}, nil)
	want := []string{"Safety bob", "SetVerified bob true", "SetVerified bob false", "AcceptKeyChange bob", "Typing bob", "MarkRead bob"}
	if got := f.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("calls = %q", got)
	}
	if code := h.errCode("setVerified", map[string]any{"name": "bob"}); code != jsonrpc.CodeInvalidParams {
		t.Errorf("setVerified without verified: code %d", code)
	}
	f.mu.Lock()
	f.actErr = domain.ErrNotFound
	f.mu.Unlock()
	if code := h.errCode("verify", map[string]any{"name": "nobody"}); code != jsonrpc.CodeNotFound {
		t.Errorf("verify unknown: code %d", code)
	}
}

func TestNotifications(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := start(t, f, jsonrpc.Options{})
	bob := identity("bob")
	msg, _ := domain.NewIncomingMessage(domain.MessageID{7}, bob.Name(), f.me.Name(), t0, "hello \u202e")
	m, _ := domain.NewManifest("big.iso", []domain.FileEntry{{Path: "big.iso", Size: 1000}})
	tr, _ := domain.NewTransfer(domain.TransferID{5}, bob.Name(), domain.Incoming, m, t0)
	_ = tr.Accept(t0)
	_ = tr.Start(0, t0)
	_ = tr.Progress(500, t0.Add(time.Second))
	old, nw := bob.Fingerprint(), identity("eve").Fingerprint()

	cases := []struct {
		ev     ports.Event
		method string
		want   map[string]any
	}{
		{ports.MessageEvent{Message: msg}, "message", map[string]any{"id": msg.ID().String(), "from": "bob", "to": "alice", "peer": "bob", "direction": "in", "text": "hello \u202e", "state": "delivered", "sentAt": "2026-11-24T12:00:00Z"}},
		{ports.MessageStateEvent{ID: domain.MessageID{8}, Peer: bob.Name(), State: domain.MessageSent}, "messageState", map[string]any{"id": domain.MessageID{8}.String(), "peer": "bob", "state": "sent"}},
		{ports.MessageStateEvent{ID: domain.MessageID{9}, Peer: bob.Name(), State: domain.MessageDelivered}, "delivered", map[string]any{"id": domain.MessageID{9}.String(), "peer": "bob"}},
		{ports.PresenceEvent{Peer: domain.Peer{Identity: bob, Online: true, LastSeen: t0}}, "presence", map[string]any{"name": "bob", "online": true, "fingerprint": bob.Fingerprint().String(), "lastSeen": "2026-11-24T12:00:00Z"}},
		{ports.DirectoryStatusEvent{Connected: false, Err: "connection refused"}, "registry", map[string]any{"connected": false, "error": "connection refused"}},
		{ports.DirectoryStatusEvent{Connected: false, Err: "REGISTRY CERTIFICATE MISMATCH", CertChanged: true}, "registry", map[string]any{"connected": false, "certChanged": true}},
		{ports.TransferEvent{Transfer: tr}, "transfer", map[string]any{"id": tr.ID().String(), "peer": "bob", "name": "big.iso", "state": "in_progress", "bytes": float64(500), "total": float64(1000), "rate": float64(500), "eta": float64(1), "direction": "in"}},
		{ports.KeyChangedEvent{Name: bob.Name(), Old: old, New: nw}, "keyChanged", map[string]any{"name": "bob", "old": old.String(), "new": nw.String()}},
		{ports.TypingEvent{From: bob.Name()}, "typing", map[string]any{"from": "bob"}},
		{ports.ReachabilityEvent{Peer: bob.Name(), Reason: "punching timed out"}, "reachability", map[string]any{"peer": "bob", "reachable": false, "reason": "punching timed out", "path": nil}},
		{ports.ReachabilityEvent{Peer: bob.Name(), Reachable: true, Path: domain.Path{Kind: domain.PathDirect, Transport: domain.TransportQUIC}}, "reachability", map[string]any{"peer": "bob", "reachable": true, "path": "direct", "transport": "quic"}},
	}
	for _, tc := range cases {
		f.events <- tc.ev
		l := h.note(tc.method)
		if l.ID != nil {
			t.Errorf("%s notification has an id: %s", tc.method, l.Raw)
		}
		var got map[string]any
		if err := json.Unmarshal(l.Params, &got); err != nil {
			t.Fatalf("%s params: %v", tc.method, err)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s.%s = %v, want %v", tc.method, k, got[k], v)
			}
		}
		if tc.method == "transfer" && got["files"] != nil {
			t.Errorf("progress notification carries the file list: %v", got["files"])
		}
	}
	// messageState comes for a delivery too, beside "delivered".
	f.events <- ports.MessageStateEvent{ID: domain.MessageID{10}, Peer: bob.Name(), State: domain.MessageDelivered}
	if l := h.note("messageState"); !strings.Contains(string(l.Params), `"delivered"`) {
		t.Errorf("messageState for delivered = %s", l.Params)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("without auto-accept the client was called: %q", calls)
	}
}

func offer(id byte, dir domain.Direction) domain.Transfer {
	m, _ := domain.NewManifest("f.bin", []domain.FileEntry{{Path: "f.bin", Size: 1}})
	t, _ := domain.NewTransfer(domain.TransferID{id}, domain.MustUsername("bob"), dir, m, t0)
	return t
}

func TestAutoAccept(t *testing.T) {
	t.Parallel()
	f := newFake()
	waiting := offer(1, domain.Incoming)
	f.transfer = []domain.Transfer{waiting, offer(2, domain.Outgoing)}
	h := start(t, f, jsonrpc.Options{AutoAccept: true})

	recv := func() domain.TransferID {
		t.Helper()
		select {
		case id := <-f.accepted:
			return id
		case <-time.After(wait):
			t.Fatal("no transfer was accepted")
			return domain.TransferID{}
		}
	}
	if id := recv(); id != waiting.ID() {
		t.Errorf("accepted %s, want the waiting offer %s", id, waiting.ID())
	}
	fresh := offer(3, domain.Incoming)
	f.events <- ports.TransferEvent{Transfer: offer(4, domain.Outgoing)}
	f.events <- ports.TransferEvent{Transfer: fresh}
	f.events <- ports.TransferEvent{Transfer: fresh} // the same offer reported twice
	f.events <- ports.TransferEvent{Transfer: waiting}
	if id := recv(); id != fresh.ID() {
		t.Errorf("accepted %s, want %s", id, fresh.ID())
	}
	// A marker event that passes through the pump after the duplicates.
	f.events <- ports.TypingEvent{From: domain.MustUsername("bob")}
	h.note("typing")
	n := 0
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "AcceptTransfer") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("AcceptTransfer called %d times, want 2: %q", n, f.Calls())
	}
}

func typingEvent() ports.Event { return ports.TypingEvent{From: domain.MustUsername("carol")} }

func TestReachabilityReport(t *testing.T) {
	t.Parallel()
	h := start(t, newFake(), jsonrpc.Options{})
	var got map[string]any
	h.result("reachability", nil, &got)
	if got["nat"] != "endpoint-independent" {
		t.Errorf("nat = %v", got["nat"])
	}
	if c, _ := got["candidates"].([]any); len(c) != 2 || c[1] != "srflx 203.0.113.9:41000" {
		t.Errorf("candidates = %v", got["candidates"])
	}
	if a, ok := got["attempts"].([]any); !ok || len(a) != 0 {
		t.Errorf("attempts = %v, want []", got["attempts"])
	}
}
