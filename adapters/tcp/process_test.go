package tcp_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// The tests below run a peer in a child process: the test binary itself,
// re-executed with CHATX_TCP_CHILD set, so that it can be stopped (SIGSTOP)
// or killed (-9) like a real peer.

const childEnv = "CHATX_TCP_CHILD"

func TestMain(m *testing.M) {
	if seed := os.Getenv(childEnv); seed != "" {
		os.Exit(runChild(seed))
	}
	os.Exit(m.Run())
}

// runChild serves a link for the identity "child" made from the hex seed,
// prints "ENDPOINT addr" and then "GOT body" for every chat, and exits when
// its standard input closes (so it never outlives the test).
func runChild(seedHex string) int {
	seed, err := hex.DecodeString(seedHex)
	if err != nil || len(seed) != ed25519.SeedSize {
		fmt.Fprintln(os.Stderr, "bad seed")
		return 2
	}
	me, err := domain.NewLocalIdentity(domain.MustUsername("child"), ed25519.NewKeyFromSeed(seed))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := tcp.Config{ListenAddr: "127.0.0.1:0", HeartbeatInterval: 200 * time.Millisecond, IdleTimeout: 2 * time.Second}
	l, cleanup, err := tcp.NewLink(me, acceptAll, nil, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer cleanup()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	out := &childOut{w: bufio.NewWriter(os.Stdout)}
	out.println("ENDPOINT " + l.Endpoints()[0])
	if err := l.Serve(ctx, out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type childOut struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (o *childOut) println(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.WriteString(s + "\n")
	o.w.Flush()
}

func (o *childOut) HandleEnvelope(_ context.Context, _ domain.Identity, env ports.Envelope) error {
	if env.Kind == ports.KindChat {
		o.println("GOT " + env.Body)
	}
	return nil
}

// child is a running child peer.
type child struct {
	cmd      *exec.Cmd
	stdin    io.Closer
	endpoint string
	got      chan string // bodies, in the order received
}

func startChild(t *testing.T, seed []byte) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+hex.EncodeToString(seed))
	cmd.Stderr = &testWriter{t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, got: make(chan string, 100000)}
	exited := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "ENDPOINT ") {
		t.Fatalf("child did not print its endpoint: %q", lines.Text())
	}
	c.endpoint = strings.TrimPrefix(lines.Text(), "ENDPOINT ")
	go func() {
		defer close(exited)
		for lines.Scan() {
			if body, ok := strings.CutPrefix(lines.Text(), "GOT "); ok {
				c.got <- body
			}
		}
		cmd.Wait()
		close(c.got)
	}()
	return c
}

func (c *child) peer(t *testing.T, seed []byte) domain.Peer {
	id, err := domain.NewIdentity(domain.MustUsername("child"), ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return domain.Peer{Identity: id, Endpoints: domain.Endpoints{Link: []string{c.endpoint}}}
}

// next waits for the child's next received body.
func (c *child) next(t *testing.T) string {
	t.Helper()
	select {
	case body, ok := <-c.got:
		if !ok {
			t.Fatal("the child exited")
		}
		return body
	case <-time.After(time.Minute):
		t.Fatal("the child received nothing for a minute")
	}
	return ""
}

func newSeed(t *testing.T) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv.Seed()
}

func TestASilentPeerIsDetected(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	seed := newSeed(t)
	kid := startChild(t, seed)
	cfg := tcp.Config{HeartbeatInterval: 200 * time.Millisecond, IdleTimeout: 2 * time.Second, DialTimeout: time.Second, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	a := startEnd(t, "alice", acceptAll, cfg)
	carol := startEnd(t, "carol", acceptAll, tcp.Config{})
	to := kid.peer(t, seed)
	if err := a.link.Send(testCtx(t), to, chat("before")); err != nil {
		t.Fatal(err)
	}
	if got := kid.next(t); got != "before" {
		t.Fatalf("child got %q", got)
	}

	if err := kid.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	waitFor(t, "the silent link to be detected", func() bool {
		return strings.Contains(a.logs.String(), "the link was silent for 2s")
	})
	t.Logf("silent link detected %s after SIGSTOP (idle timeout 2s, heartbeat 200ms)", time.Since(stopped).Round(time.Millisecond))

	// Other conversations were never blocked.
	for i := range 100 {
		if err := a.link.Send(testCtx(t), carol.peer(), chat(fmt.Sprint(i))); err != nil {
			t.Fatalf("send to carol while the child is stopped: %v", err)
		}
	}
	carol.rec.WaitN(t, 100)

	// The stopped peer's kernel still accepts TCP, but it never completes
	// the TLS handshake: the dial fails within the dial timeout.
	err := a.link.Send(testCtx(t), to, chat("while stopped"))
	if !errors.Is(err, domain.ErrPeerOffline) {
		t.Fatalf("Send to a stopped peer: %v, want ErrPeerOffline", err)
	}

	// Woken up, it is reachable again.
	if err := kid.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	var sendErr error
	waitFor(t, "the child to answer again", func() bool {
		sendErr = a.link.Send(testCtx(t), to, chat("after"))
		return sendErr == nil
	})
	if got := kid.next(t); got != "after" {
		t.Fatalf("child got %q after waking up, want \"after\"", got)
	}
}

// The receiving process is killed -9 in the middle of a stream and started
// again. The link cannot deliver exactly once by itself — envelopes queued
// when the peer died are lost — but it must say so: Send fails instead of
// losing messages silently forever, and works again once the peer is back.
// Exactly-once delivery end to end is the use-cases' job (outbox with
// retries plus deduplication by message ID at the receiver).
func TestAPeerKilledMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	seed := newSeed(t)
	kid := startChild(t, seed)
	cfg := tcp.Config{HeartbeatInterval: 200 * time.Millisecond, IdleTimeout: 2 * time.Second, DialTimeout: time.Second, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	a := startEnd(t, "alice", acceptAll, cfg)
	to := kid.peer(t, seed)

	sent := 0
	var sendErr error
	killed := false
	for sendErr == nil {
		if sent == 500 && !killed {
			// The child has received some of the stream; kill it now.
			for range 100 {
				kid.next(t)
			}
			if err := kid.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
		if sent > 1_000_000 {
			t.Fatal("a million Sends succeeded to a killed peer")
		}
		sendErr = a.link.Send(testCtx(t), to, chat(fmt.Sprint(sent)))
		if sendErr == nil {
			sent++
		}
	}
	if !killed {
		t.Fatalf("Send failed before the peer was killed: %v", sendErr)
	}
	received := 100
	for range kid.got {
		received++
	}
	t.Logf("Send failed after the kill: %v; %d of %d envelopes Send accepted reached the killed child (the rest is the app's outbox's to resend)", sendErr, received, sent)

	// Restarted (same identity, new port), it gets a fresh link; what is
	// sent now arrives, in order.
	kid2 := startChild(t, seed)
	to2 := kid2.peer(t, seed)
	for i := range 100 {
		var err error
		waitFor(t, "a link to the restarted peer", func() bool {
			err = a.link.Send(testCtx(t), to2, chat(fmt.Sprint("again ", i)))
			return err == nil
		})
	}
	for i := range 100 {
		if got, want := kid2.next(t), fmt.Sprint("again ", i); got != want {
			t.Fatalf("restarted child got %q, want %q", got, want)
		}
	}
}
