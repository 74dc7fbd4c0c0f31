package jsonrpc_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/jsonrpc"
)

// pipedServer runs a Server for fake on pipes and returns where to write
// requests and every line it writes, in order.
func pipedServer(t *testing.T, fake *fakeClient) (io.WriteCloser, <-chan json.RawMessage) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	srv := jsonrpc.NewServer(fake, inR, outW, jsonrpc.Options{}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(ctx)
		outW.Close()
	}()
	lines := make(chan json.RawMessage, 16384)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			lines <- append(json.RawMessage(nil), sc.Bytes()...)
		}
	}()
	t.Cleanup(func() {
		cancel()
		inW.Close()
		select {
		case <-served:
		case <-time.After(wait):
			t.Error("Serve did not return")
		}
	})
	return inW, lines
}

// response reads the next response (skipping notifications).
func response(t *testing.T, lines <-chan json.RawMessage) line {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case raw, ok := <-lines:
			if !ok {
				t.Fatal("output closed")
			}
			var l line
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Fatalf("server wrote %q: %v", raw, err)
			}
			if l.Method != "" {
				continue
			}
			l.Raw = raw
			return l
		case <-deadline:
			t.Fatal("no response")
			return line{}
		}
	}
}

// Thousands of sends written at once are in flight together — the first
// is stored only once a thousand were started, so a server taking them one
// after the other never answers — and are still answered in the order
// written; a request after them (here
// whoami, a read, and typing, an ordered one) is not held up or reordered.
func TestPipelinedSendsAreStartedTogetherAndAnsweredInOrder(t *testing.T) {
	const n, together = 3000, 1000
	fake := newFake()
	var mu sync.Mutex
	started := 0
	all := make(chan struct{})
	fake.startHook = func(text string) <-chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		started++
		if started == together {
			close(all)
		}
		if text == "m0" {
			return all
		}
		return nil
	}
	in, lines := pipedServer(t, fake)
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"send","params":{"to":"bob","text":"m%d"}}`+"\n", i, i)
	}
	fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"typing","params":{"to":"bob"}}`+"\n", n)
	go func() { _, _ = io.WriteString(in, b.String()) }()
	for i := range n + 1 {
		l := response(t, lines)
		if string(l.ID) != fmt.Sprint(i) {
			t.Fatalf("response %d is for id %s: answered out of order", i, l.ID)
		}
		if l.Error != nil {
			t.Fatalf("request %d: error %d %s", i, l.Error.Code, l.Error.Message)
		}
		if i < n {
			var m struct{ Text string }
			if err := json.Unmarshal(l.Result, &m); err != nil || m.Text != fmt.Sprint("m", i) {
				t.Fatalf("send %d answered with %s", i, l.Result)
			}
		}
	}
	calls := fake.Calls()
	if len(calls) != n+1 || calls[n] != "Typing bob" {
		t.Fatalf("typing ran at %d of %d calls: it must follow every send", len(calls)-1, n)
	}
	for i := range n {
		if calls[i] != fmt.Sprint("Send bob m", i) {
			t.Fatalf("call %d is %q", i, calls[i])
		}
	}
}

// A send refused at once (a bad name) is answered in its place among the
// pipelined ones.
func TestRefusedPipelinedSendIsAnsweredInPlace(t *testing.T) {
	in, lines := pipedServer(t, newFake())
	reqs := `{"jsonrpc":"2.0","id":1,"method":"send","params":{"to":"bob","text":"a"}}
{"jsonrpc":"2.0","id":2,"method":"send","params":{"to":"no such/name","text":"b"}}
{"jsonrpc":"2.0","method":"send","params":{"to":"bob","text":"a notification"}}
{"jsonrpc":"2.0","id":3,"method":"send","params":{"to":"bob","text":"c"}}
`
	go func() { _, _ = io.WriteString(in, reqs) }()
	for i, want := range []string{"1", "2", "3"} {
		l := response(t, lines)
		if string(l.ID) != want {
			t.Fatalf("response %d is for id %s, want %s", i, l.ID, want)
		}
		if (l.Error != nil) != (want == "2") {
			t.Fatalf("response %s: %s", want, l.Raw)
		}
	}
}
