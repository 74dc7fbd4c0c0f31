package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// exitStatus waits (at most d) for the process to end by itself and returns
// its exit status.
func (c *rpcClient) exitStatus(d time.Duration) int {
	c.t.Helper()
	select {
	case <-c.exited:
	case <-time.After(d):
		c.t.Fatalf("%s still running after %v\nlogs:\n%s", c.name, d, c.logs.String())
	}
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return 0
}

func waitReady(ctx context.Context, c *rpcClient) {
	c.t.Helper()
	c.waitNote(ctx, "ready", func(p json.RawMessage) bool {
		var r struct{ Name string }
		return json.Unmarshal(p, &r) == nil && r.Name == c.name
	})
}

// TestTakenNameFailsFastAndCanBeChanged: `chatx jsonrpc` with a name that
// another key owns tells the script (an error notification, -32008) and
// exits non-zero within seconds; the same profile, never bound, may then
// take another name.
func TestTakenNameFailsFastAndCanBeChanged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	alice := startClient(t, "alice", reg.url, newDirs(t, "alice"))
	waitReady(ctx, alice)

	dirs := newDirs(t, "mallory")
	thief := startClient(t, "alice", reg.url, dirs)
	params := thief.waitNote(ctx, "error", func(json.RawMessage) bool { return true })
	var e struct {
		Code    int
		Message string
	}
	if err := json.Unmarshal(params, &e); err != nil || e.Code != -32008 || !strings.Contains(e.Message, "--name") {
		t.Fatalf("error notification %s, want code -32008 saying what to do", params)
	}
	if code := thief.exitStatus(20 * time.Second); code == 0 {
		t.Fatalf("exit status 0 with a taken name\nlogs:\n%s", thief.logs.String())
	}
	if strings.Count(thief.logs.String(), "register alice: register alice") > 0 {
		t.Fatalf("the error repeats its prefix:\n%s", thief.logs.String())
	}

	carol := startClient(t, "carol", reg.url, dirs)
	waitReady(ctx, carol)
	var who struct{ Name string }
	carol.call("whoami", map[string]any{}, &who)
	if who.Name != "carol" {
		t.Fatalf("whoami after renaming: %q", who.Name)
	}
}

// TestOneProcessPerProfile: a second process on a profile in use refuses
// with a clear error instead of fighting the first over the registry entry.
func TestOneProcessPerProfile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	dirs := newDirs(t, "alice")
	first := startClient(t, "alice", reg.url, dirs)
	waitReady(ctx, first)
	second := startClient(t, "alice", reg.url, dirs)
	if code := second.exitStatus(20 * time.Second); code == 0 || !strings.Contains(second.logs.String(), "in use by another chatx process") {
		t.Fatalf("second process on one profile: exit %d\nlogs:\n%s", code, second.logs.String())
	}
	var who struct{ Name string }
	first.call("whoami", map[string]any{}, &who) // the first one goes on
	first.kill()
	// The kernel drops the lock of a killed process: the profile opens again.
	again := startClient(t, "alice", reg.url, dirs)
	waitReady(ctx, again)
}

// TestFiveThousandSendsArriveInOrder: a bot writing 5,000 sends at once
// gets them to the peer in that order.
func TestFiveThousandSendsArriveInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	alice := startClient(t, "alice", reg.url, newDirs(t, "alice"))
	bob := startClient(t, "bob", reg.url, newDirs(t, "bob"))
	alice.waitOnline(ctx, "bob")
	const n = 5000
	var all strings.Builder
	for i := range n {
		fmt.Fprintf(&all, `{"jsonrpc":"2.0","method":"send","params":{"to":"bob","text":"m%d"}}`+"\n", i)
	}
	if _, err := alice.stdin.Write([]byte(all.String())); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		want := fmt.Sprint("m", i)
		bob.waitNote(ctx, "message", func(p json.RawMessage) bool {
			var m messageNote
			if json.Unmarshal(p, &m) != nil || m.From != "alice" {
				return false
			}
			if m.Text != want {
				t.Fatalf("message %d arrived as %q: out of order", i, m.Text)
			}
			return true
		})
	}
}
