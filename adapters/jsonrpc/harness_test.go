package jsonrpc_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/jsonrpc"
)

const wait = 10 * time.Second

// line is one line the server wrote, decoded loosely.
type line struct {
	Raw     json.RawMessage
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// harness runs a Server on pipes and sorts what it writes: responses by id,
// notifications, and the rest (null ids, batches).
type harness struct {
	t    *testing.T
	fake *fakeClient
	inW  *io.PipeWriter
	inR  *io.PipeReader

	mu        sync.Mutex
	responses map[string]chan line
	notes     chan line
	others    chan json.RawMessage
	served    chan error
	cancel    context.CancelFunc
	nextID    atomic.Int64
	writeMu   sync.Mutex
}

func start(t *testing.T, fake *fakeClient, opts jsonrpc.Options) *harness {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h := &harness{t: t, fake: fake, inW: inW, inR: inR, responses: map[string]chan line{},
		notes: make(chan line, 1024), others: make(chan json.RawMessage, 1024), served: make(chan error, 1)}
	srv := jsonrpc.NewServer(fake, inR, outW, opts, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		h.served <- srv.Serve(ctx)
		outW.Close()
	}()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			raw := append(json.RawMessage(nil), sc.Bytes()...)
			if !json.Valid(raw) {
				t.Errorf("server wrote a line that is not JSON: %q", raw)
				continue
			}
			if raw[0] == '[' {
				h.others <- raw
				continue
			}
			var l line
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Errorf("server wrote %q: %v", raw, err)
				continue
			}
			l.Raw = raw
			if l.JSONRPC != "2.0" {
				t.Errorf("line without jsonrpc 2.0: %s", raw)
			}
			switch {
			case l.Method != "":
				select {
				case h.notes <- l:
				default: // a test that floods notifications does not read them
				}
			case string(l.ID) == "null" || l.ID == nil:
				h.others <- raw
			default:
				h.mu.Lock()
				ch := h.responses[string(l.ID)]
				h.mu.Unlock()
				if ch == nil {
					t.Errorf("response to an id nobody asked: %s", raw)
					continue
				}
				ch <- l
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		inW.Close()
		select {
		case <-h.served:
		case <-time.After(wait):
			t.Error("Serve did not return")
		}
		<-readerDone
	})
	return h
}

func (h *harness) writeLine(s string) {
	h.t.Helper()
	h.writeMu.Lock()
	defer h.writeMu.Unlock()
	if _, err := io.WriteString(h.inW, s+"\n"); err != nil {
		h.t.Fatalf("write request: %v", err)
	}
}

// expect registers a response channel for id (its JSON form).
func (h *harness) expect(id string) chan line {
	ch := make(chan line, 1)
	h.mu.Lock()
	h.responses[id] = ch
	h.mu.Unlock()
	return ch
}

func (h *harness) await(ch chan line, what string) line {
	h.t.Helper()
	select {
	case l := <-ch:
		return l
	case <-time.After(wait):
		h.t.Fatalf("no response to %s", what)
		return line{}
	}
}

// call sends a request and returns its response line.
func (h *harness) call(method string, params any) line {
	h.t.Helper()
	id := h.nextID.Add(1)
	ch := h.expect(strconv.FormatInt(id, 10))
	req := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	b, err := json.Marshal(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.writeLine(string(b))
	return h.await(ch, method)
}

// result calls and decodes a successful result into v.
func (h *harness) result(method string, params any, v any) {
	h.t.Helper()
	l := h.call(method, params)
	if l.Error != nil {
		h.t.Fatalf("%s: error %d %s", method, l.Error.Code, l.Error.Message)
	}
	if l.Result == nil {
		h.t.Fatalf("%s: no result in %s", method, l.Raw)
	}
	if v != nil {
		if err := json.Unmarshal(l.Result, v); err != nil {
			h.t.Fatalf("%s: result %s: %v", method, l.Result, err)
		}
	}
}

// errCode calls and returns the error code (failing if it succeeded).
func (h *harness) errCode(method string, params any) int {
	h.t.Helper()
	l := h.call(method, params)
	if l.Error == nil {
		h.t.Fatalf("%s %v succeeded: %s", method, params, l.Raw)
	}
	if l.Error.Message == "" {
		h.t.Errorf("%s: error without a message", method)
	}
	return l.Error.Code
}

func (h *harness) other() json.RawMessage {
	h.t.Helper()
	select {
	case raw := <-h.others:
		return raw
	case <-time.After(wait):
		h.t.Fatal("no response")
		return nil
	}
}

// note waits for the next notification with this method, skipping others.
func (h *harness) note(method string) line {
	h.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case l := <-h.notes:
			if l.Method == method {
				return l
			}
		case <-deadline:
			h.t.Fatalf("no %q notification", method)
			return line{}
		}
	}
}
