package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var chatxBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chatx-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	chatxBin = filepath.Join(dir, "chatx")
	// The binary is built like the test binary: with the race detector
	// under `go test -race`, without it for benchmarks (make bench-reach).
	args := []string{"build", "-o", chatxBin, "../cmd/chatx"}
	if raceBuild {
		args = []string{"build", "-race", "-o", chatxBin, "../cmd/chatx"}
	}
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build chatx:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output for failure messages.
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

// registryProc is a `chatx registry` process.
type registryProc struct {
	cmd    *exec.Cmd
	url    string
	out    *syncBuffer
	exited chan struct{}
}

var listenLine = regexp.MustCompile(`registry started, listening on ([0-9.]+:[0-9]+).*sha256=([0-9a-f]{64})`)

func startRegistry(t *testing.T, data, listen string) *registryProc {
	t.Helper()
	return startRegistryIn(t, nil, data, listen, "--relay-listen", "127.0.0.1:0")
}

// startRegistryIn starts `chatx registry` under the command prefix wrap
// (e.g. `ip netns exec NS`, which execs it) with extra flags.
func startRegistryIn(t *testing.T, wrap []string, data, listen string, extra ...string) *registryProc {
	t.Helper()
	argv := append(append(append([]string(nil), wrap...), chatxBin, "registry", "--listen", listen, "--data", data), extra...)
	cmd := exec.Command(argv[0], argv[1:]...)
	pr, pw := io.Pipe()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(pw, out), out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &registryProc{cmd: cmd, out: out, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); pw.Close(); close(r.exited) }()
	t.Cleanup(r.stop)
	found := make(chan string, 1)
	go watchListenLine(pr, found)
	select {
	case r.url = <-found:
	case <-r.exited:
		t.Fatalf("registry exited at start:\n%s", out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("registry did not start:\n%s", out.String())
	}
	return r
}

// watchListenLine reads a registry's output to its end and sends its
// pinned URL to found once, when the "registry started" line goes by.
func watchListenLine(out io.Reader, found chan<- string) {
	sc := bufio.NewScanner(out)
	sent := false
	for sc.Scan() {
		if m := listenLine.FindStringSubmatch(sc.Text()); m != nil && !sent {
			found <- "https://" + m[1] + "/#sha256=" + m[2]
			sent = true
		}
	}
	_, _ = io.Copy(io.Discard, out) // a line too long for the scanner must not block the writer
}

func (r *registryProc) stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// rpcClient is a `chatx jsonrpc` process and a JSON-RPC 2.0 client for it.
type rpcClient struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	logs  *syncBuffer

	mu      sync.Mutex
	nextID  int
	pending map[int]chan rpcResponse
	notes   chan rpcNote
	exited  chan struct{}
}

type rpcResponse struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// rpcError is an error response: the server answered and refused.
type rpcError struct {
	Code    int
	Message string
}

func (e *rpcError) Error() string { return fmt.Sprintf("error %d: %s", e.Code, e.Message) }

type rpcNote struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

type clientDirs struct{ profile, downloads string }

func newDirs(t *testing.T, name string) clientDirs {
	base := t.TempDir()
	return clientDirs{profile: filepath.Join(base, name+"-profile"), downloads: filepath.Join(base, name+"-downloads")}
}

// startClient starts `chatx jsonrpc` on loopback with LAN discovery off
// (other tests' clients on this machine must not show up in its peer
// list); extra flags come last and win.
func startClient(t *testing.T, name, registryURL string, dirs clientDirs, extra ...string) *rpcClient {
	t.Helper()
	return startClientIn(t, nil, name, registryURL, dirs, append([]string{"--listen-tcp", "127.0.0.1:0", "--listen-udp", "127.0.0.1:0", "--lan=false"}, extra...)...)
}

// startClientIn starts `chatx jsonrpc` under the command prefix wrap (e.g.
// `ip netns exec NS`, which execs it); flags holds the listen flags and more.
func startClientIn(t *testing.T, wrap []string, name, registryURL string, dirs clientDirs, flags ...string) *rpcClient {
	t.Helper()
	// The processes of these tests are strangers to each other: they take
	// messages and offers from anyone (message requests are tested in
	// the root package's contacts_test.go and in app).
	argv := append(append(append([]string(nil), wrap...), chatxBin, "jsonrpc", "--name", name, "--profile", dirs.profile,
		"--registry", registryURL, "--downloads", dirs.downloads, "--accept-from-anyone"), flags...)
	cmd := exec.Command(argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &rpcClient{t: t, name: name, cmd: cmd, stdin: stdin, logs: &syncBuffer{},
		pending: map[int]chan rpcResponse{}, notes: make(chan rpcNote, 100000), exited: make(chan struct{})}
	cmd.Stderr = c.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go c.read(stdout)
	t.Cleanup(c.stop)
	return c
}

func (c *rpcClient) read(r io.Reader) {
	defer close(c.exited)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var head struct {
			ID     *int   `json:"id"`
			Method string `json:"method"`
		}
		line := append([]byte(nil), sc.Bytes()...)
		if err := json.Unmarshal(line, &head); err != nil {
			continue
		}
		if head.ID != nil {
			var resp rpcResponse
			_ = json.Unmarshal(line, &resp)
			c.mu.Lock()
			ch := c.pending[*head.ID]
			delete(c.pending, *head.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- resp
			}
			continue
		}
		var n rpcNote
		if json.Unmarshal(line, &n) == nil {
			select {
			case c.notes <- n:
			default: // a test that ignores notifications must not block the reader
			}
		}
	}
}

// call sends a request and waits for its response, failing the test on an error response.
func (c *rpcClient) call(method string, params any, result any) {
	c.t.Helper()
	if err := c.tryCall(method, params, result); err != nil {
		c.t.Fatalf("%s: %s: %v\nlogs:\n%s", c.name, method, err, c.logs.String())
	}
}

func (c *rpcClient) tryCall(method string, params any, result any) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan rpcResponse, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if _, err := c.stdin.Write(append(req, '\n')); err != nil {
		return err
	}
	select {
	case resp := <-ch:
		if resp.Error != nil {
			return &rpcError{Code: resp.Error.Code, Message: resp.Error.Message}
		}
		if result != nil {
			return json.Unmarshal(resp.Result, result)
		}
		return nil
	case <-c.exited:
		return fmt.Errorf("process exited")
	case <-time.After(60 * time.Second):
		return fmt.Errorf("no answer in 60 s")
	}
}

// waitNote waits for a notification of method whose params satisfy match.
func (c *rpcClient) waitNote(ctx context.Context, method string, match func(json.RawMessage) bool) json.RawMessage {
	c.t.Helper()
	params, err := c.awaitNote(ctx, method, match)
	if err != nil {
		c.t.Fatalf("%v\nlogs:\n%s", err, c.logs.String())
	}
	return params
}

// awaitNote is waitNote returning the failure instead of failing the test.
// Notifications that do not match are consumed.
func (c *rpcClient) awaitNote(ctx context.Context, method string, match func(json.RawMessage) bool) (json.RawMessage, error) {
	for {
		select {
		case n := <-c.notes:
			if n.Method == method && match(n.Params) {
				return n.Params, nil
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: no %s notification: %w", c.name, method, ctx.Err())
		case <-c.exited:
			return nil, fmt.Errorf("%s: process exited waiting for %s", c.name, method)
		}
	}
}

// waitOnline polls listPeers until peer is online.
func (c *rpcClient) waitOnline(ctx context.Context, peer string) {
	c.t.Helper()
	if err := c.awaitOnline(ctx, peer); err != nil {
		c.t.Fatalf("%v\nlogs:\n%s", err, c.logs.String())
	}
}

// awaitOnline is waitOnline returning the failure instead of failing the test.
func (c *rpcClient) awaitOnline(ctx context.Context, peer string) error {
	for {
		var peers []struct {
			Name   string `json:"name"`
			Online bool   `json:"online"`
		}
		if err := c.tryCall("listPeers", map[string]any{}, &peers); err != nil {
			return fmt.Errorf("%s: listPeers: %w", c.name, err)
		}
		for _, p := range peers {
			if p.Name == peer && p.Online {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never saw %s online: %w", c.name, peer, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// kill ends the process at once, as kill -9 would.
func (c *rpcClient) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
	_ = c.cmd.Wait()
}

// stop closes stdin (the documented way to end `chatx jsonrpc`) and waits.
func (c *rpcClient) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
