package jsonrpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/jsonrpc"
)

// errorOf decodes an error response written with a null id.
func errorOf(t *testing.T, raw json.RawMessage) int {
	t.Helper()
	var r struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("response %s: %v", raw, err)
	}
	if r.JSONRPC != "2.0" || string(r.ID) != "null" || r.Result != nil || r.Error.Message == "" {
		t.Errorf("malformed error response %s", raw)
	}
	return r.Error.Code
}

func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	h := start(t, newFake(), jsonrpc.Options{})
	cases := []struct {
		line string
		id   string // the id echoed; "" for null
		code int
	}{
		{`not json`, "", jsonrpc.CodeParseError},
		{`{"jsonrpc":"2.0","method":"whoami","id":1`, "", jsonrpc.CodeParseError},
		{"\xff\xfe", "", jsonrpc.CodeParseError},
		{`42`, "", jsonrpc.CodeInvalidRequest},
		{`"whoami"`, "", jsonrpc.CodeInvalidRequest},
		{`[]`, "", jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","method":"whoami","id":{"a":1}}`, "", jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","method":"whoami","id":[1]}`, "", jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","method":"whoami","id":true}`, "", jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"1.0","method":"whoami","id":11}`, "11", jsonrpc.CodeInvalidRequest},
		{`{"method":"whoami","id":12}`, "12", jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","method":7,"id":13}`, "13", jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":"14"}`, `"14"`, jsonrpc.CodeInvalidRequest},
	}
	for _, tc := range cases {
		if tc.id == "" {
			h.writeLine(tc.line)
			if code := errorOf(t, h.other()); code != tc.code {
				t.Errorf("%q: code %d, want %d", tc.line, code, tc.code)
			}
			continue
		}
		ch := h.expect(tc.id)
		h.writeLine(tc.line)
		if l := h.await(ch, tc.line); l.Error == nil || l.Error.Code != tc.code {
			t.Errorf("%q = %s, want code %d", tc.line, l.Raw, tc.code)
		}
	}
	// Errors that keep the request's id.
	for _, tc := range []struct {
		line, id string
		code     int
	}{
		{`{"jsonrpc":"2.0","method":"noSuchMethod","id":"abc"}`, `"abc"`, jsonrpc.CodeMethodNotFound},
		{`{"jsonrpc":"2.0","method":"send","params":["bob","hi"],"id":-5}`, `-5`, jsonrpc.CodeInvalidParams},
		{`{"jsonrpc":"2.0","method":"send","params":"bob","id":2.5}`, `2.5`, jsonrpc.CodeInvalidParams},
		{`{"jsonrpc":"2.0","method":"send","params":{"to":"bob","text":"hi","colour":"red"},"id":"x"}`, `"x"`, jsonrpc.CodeInvalidParams},
		{`{"jsonrpc":"2.0","method":"send","params":{"to":"bob","text":"hi"} ,"id":"y"}  `, `"y"`, 0},
	} {
		ch := h.expect(tc.id)
		h.writeLine(tc.line)
		l := h.await(ch, tc.line)
		switch {
		case tc.code == 0 && l.Error != nil:
			t.Errorf("%s: %s", tc.line, l.Raw)
		case tc.code != 0 && (l.Error == nil || l.Error.Code != tc.code):
			t.Errorf("%s = %s, want code %d", tc.line, l.Raw, tc.code)
		}
	}
	// The server still answers after all that.
	h.result("whoami", nil, nil)
}

func TestNullIDAndNotifications(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := start(t, f, jsonrpc.Options{})
	// A request with a null id is answered (with a null id).
	h.writeLine(`{"jsonrpc":"2.0","method":"whoami","id":null}`)
	var r struct {
		ID     json.RawMessage `json:"id"`
		Result map[string]any  `json:"result"`
	}
	if err := json.Unmarshal(h.other(), &r); err != nil || string(r.ID) != "null" || r.Result["name"] != "alice" {
		t.Fatalf("null id request = %+v, %v", r, err)
	}
	// A notification (no id) is run and never answered, even when it fails.
	h.writeLine(`{"jsonrpc":"2.0","method":"typing","params":{"to":"bob"}}`)
	h.writeLine(`{"jsonrpc":"2.0","method":"noSuchMethod"}`)
	h.writeLine(`{"jsonrpc":"2.0","method":"send","params":{"to":"x"}}`)
	select {
	case <-f.typed:
	case <-time.After(wait):
		t.Fatalf("notification not run: %q", f.Calls())
	}
	h.result("whoami", nil, nil)
	select {
	case raw := <-h.others:
		t.Errorf("a notification was answered: %s", raw)
	default:
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestBatch(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := start(t, f, jsonrpc.Options{})
	h.writeLine(`[{"jsonrpc":"2.0","method":"whoami","id":1},{"jsonrpc":"2.0","method":"typing","params":{"to":"bob"}},` +
		`{"jsonrpc":"2.0","method":"nope","id":2},5]`)
	var rs []struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *struct{ Code int }
	}
	if err := json.Unmarshal(h.other(), &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || string(rs[0].ID) != "1" || rs[0].Result == nil || string(rs[1].ID) != "2" ||
		rs[1].Error == nil || rs[1].Error.Code != jsonrpc.CodeMethodNotFound || rs[2].Error == nil || rs[2].Error.Code != jsonrpc.CodeInvalidRequest {
		t.Errorf("batch responses = %+v", rs)
	}
	if !contains(f.Calls(), "Typing bob") {
		t.Errorf("notification in a batch not run: %q", f.Calls())
	}
}

func TestOversizedLine(t *testing.T) {
	t.Parallel()
	for _, max := range []int{0, 4096} { // the default (1 MiB) and a small bound
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			t.Parallel()
			f := newFake()
			h := start(t, f, jsonrpc.Options{MaxLineBytes: max})
			limit := max
			if limit == 0 {
				limit = jsonrpc.DefaultMaxLineBytes
			}
			text := strings.Repeat("a", limit+10)
			h.writeLine(`{"jsonrpc":"2.0","method":"send","params":{"to":"bob","text":"` + text + `"},"id":1}`)
			if code := errorOf(t, h.other()); code != jsonrpc.CodeInvalidRequest {
				t.Errorf("oversized line: code %d", code)
			}
			// A line of exactly the limit is read.
			pad := limit - len(`{"jsonrpc":"2.0","method":"whoami","id":2}`)
			ch := h.expect("2")
			h.writeLine(`{"jsonrpc":"2.0","method":"whoami","id":2}` + strings.Repeat(" ", pad))
			if l := h.await(ch, "line at the limit"); l.Error != nil {
				t.Errorf("line at the limit: %s", l.Raw)
			}
			h.result("whoami", nil, nil)
			if contains(f.Calls(), "Send bob "+text) {
				t.Error("the oversized request was run")
			}
		})
	}
}

func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	f := newFake()
	const together = 8
	var (
		arrived = make(chan struct{}, together)
		release = make(chan struct{})
		once    sync.Once
	)
	f.peerHook = func(ctx context.Context) {
		arrived <- struct{}{}
		if len(arrived) == together {
			once.Do(func() { close(release) })
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	h := start(t, f, jsonrpc.Options{MaxInFlight: 16})
	// Eight reads that each wait until all eight are running: only
	// concurrent handling answers them. (Sends are ordered: see
	// TestSendsKeepTheirOrder.)
	var wg sync.WaitGroup
	for range together {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.result("listPeers", nil, nil)
		}()
	}
	wg.Wait()
	f.mu.Lock()
	f.peerHook = nil
	f.mu.Unlock()
	// Many more, from many writers, interleaved with notifications.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case f.events <- typingEvent():
			}
		}
	}()
	defer close(stop)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m struct{ Text string }
			h.result("send", map[string]any{"to": "bob", "text": fmt.Sprint("n", i)}, &m)
			if m.Text != fmt.Sprint("n", i) {
				t.Errorf("response %d carries %q", i, m.Text)
			}
		}()
	}
	wg.Wait()
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	t.Run("EOF waits for requests in flight", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		entered, release := make(chan struct{}), make(chan struct{})
		f.sendHook = func(context.Context) { close(entered); <-release }
		inR, inW := io.Pipe()
		var out syncBuffer
		srv := jsonrpc.NewServer(f, inR, &out, jsonrpc.Options{}, nil)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(context.Background()) }()
		io.WriteString(inW, `{"jsonrpc":"2.0","method":"send","params":{"to":"bob","text":"last words"},"id":1}`)
		inW.Close() // EOF without a final newline
		<-entered
		select {
		case err := <-done:
			t.Fatalf("Serve returned before the request finished: %v", err)
		case <-time.After(50 * time.Millisecond): // not a sync: a window in which returning early would be seen
		}
		close(release)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve after EOF: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("Serve did not return after EOF")
		}
		if !strings.Contains(out.String(), `"text":"last words"`) || !strings.Contains(out.String(), `"id":1`) {
			t.Fatalf("response to the last request missing: %s", out.String())
		}
	})
	t.Run("ctx cancel with the input open", func(t *testing.T) {
		t.Parallel()
		inR, inW := io.Pipe()
		defer inW.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- jsonrpc.NewServer(newFake(), inR, io.Discard, jsonrpc.Options{}, nil).Serve(ctx) }()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve after cancel: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("Serve did not return after cancel")
		}
	})
	t.Run("ctx cancel interrupts a read that supports deadlines", func(t *testing.T) {
		t.Parallel()
		inR, inW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer inR.Close()
		defer inW.Close()
		ctx, cancel := context.WithCancel(context.Background())
		var out syncBuffer
		done := make(chan error, 1)
		go func() { done <- jsonrpc.NewServer(newFake(), inR, &out, jsonrpc.Options{}, nil).Serve(ctx) }()
		io.WriteString(inW, `{"jsonrpc":"2.0","method":"whoami","id":1}`+"\n")
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve after cancel: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("Serve did not return after cancel")
		}
	})
	t.Run("broken output", func(t *testing.T) {
		t.Parallel()
		inR, inW := io.Pipe()
		defer inW.Close()
		done := make(chan error, 1)
		go func() {
			done <- jsonrpc.NewServer(newFake(), inR, failWriter{}, jsonrpc.Options{}, nil).Serve(context.Background())
		}()
		go io.WriteString(inW, `{"jsonrpc":"2.0","method":"whoami","id":1}`+"\n")
		select {
		case err := <-done:
			if !errors.Is(err, errBroken) {
				t.Fatalf("Serve with a broken output: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("Serve did not return after the output broke")
		}
	})
}

var errBroken = errors.New("broken pipe")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errBroken }

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
