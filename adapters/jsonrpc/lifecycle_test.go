package jsonrpc_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/jsonrpc"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// TestSendsKeepTheirOrder: a bot that writes 5,000 sends at once gets them
// handed to the client, and so queued for the peer, in that order.
func TestSendsKeepTheirOrder(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := start(t, f, jsonrpc.Options{})
	const n = 5000
	var all strings.Builder
	chans := make([]chan line, n)
	for i := range n {
		chans[i] = h.expect(fmt.Sprint(i + 1))
		fmt.Fprintf(&all, `{"jsonrpc":"2.0","id":%d,"method":"send","params":{"to":"bob","text":"m%d"}}`+"\n", i+1, i)
	}
	go func() { _, _ = io.WriteString(h.inW, all.String()) }() // one write, as a bot's buffered output
	for i := range n {
		if l := h.await(chans[i], fmt.Sprint("send ", i)); l.Error != nil {
			t.Fatalf("send %d: %s", i, l.Raw)
		}
	}
	var sends []string
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "Send ") {
			sends = append(sends, c)
		}
	}
	if len(sends) != n {
		t.Fatalf("%d sends reached the client, want %d", len(sends), n)
	}
	for i, c := range sends {
		if want := fmt.Sprint("Send bob m", i); c != want {
			t.Fatalf("send %d reached the client as %q, want %q: out of order", i, c, want)
		}
	}
}

// TestReadyNotification: the client's registration is announced as "ready".
func TestReadyNotification(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := start(t, f, jsonrpc.Options{})
	f.events <- ports.RegisteredEvent{Name: domain.MustUsername("alice")}
	var v struct{ Name, Fingerprint string }
	if err := json.Unmarshal(h.note("ready").Params, &v); err != nil {
		t.Fatal(err)
	}
	if v.Name != "alice" || v.Fingerprint != f.me.Fingerprint().String() {
		t.Fatalf("ready %+v", v)
	}
}

// TestFailTellsTheScriptAndStops: a client that cannot go on (the name is
// taken) reaches the script as an "error" notification with the documented
// code, and Serve returns although the input stays open.
func TestFailTellsTheScriptAndStops(t *testing.T) {
	t.Parallel()
	inR, inW := io.Pipe()
	defer inW.Close()
	outR, outW := io.Pipe()
	subscribed := make(chan struct{})
	var srv *jsonrpc.Server
	srv = jsonrpc.NewServer(newFake(), inR, outW, jsonrpc.Options{Subscribed: func() {
		close(subscribed)
		go srv.Fail(fmt.Errorf("register alice: %w", domain.ErrNameTaken))
	}}, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()); outW.Close() }()
	<-subscribed
	sc := bufio.NewScanner(outR)
	if !sc.Scan() {
		t.Fatalf("no line: %v", sc.Err())
	}
	var l line
	if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	var e struct {
		Code    int
		Message string
	}
	if err := json.Unmarshal(l.Params, &e); err != nil || l.Method != "error" || e.Code != jsonrpc.CodeNameTaken || !strings.Contains(e.Message, "name is bound to another key") {
		t.Fatalf("first line %s, want an error notification with code %d", sc.Bytes(), jsonrpc.CodeNameTaken)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return after Fail")
	}
}
