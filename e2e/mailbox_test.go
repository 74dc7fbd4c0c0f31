package e2e_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type historyNote struct {
	ID        string `json:"id"`
	Direction string `json:"direction"`
	Text      string `json:"text"`
	State     string `json:"state"`
}

// waitLog waits until the client's log holds line.
func waitLog(ctx context.Context, t *testing.T, c *rpcClient, line string) {
	t.Helper()
	for !strings.Contains(c.logs.String(), line) {
		select {
		case <-ctx.Done():
			t.Fatalf("%s never logged %q\nlogs:\n%s", c.name, line, c.logs.String())
		case <-c.exited:
			t.Fatalf("%s exited before logging %q\nlogs:\n%s", c.name, line, c.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitHistory polls c's history with peer until cond holds.
func waitHistory(ctx context.Context, t *testing.T, c *rpcClient, peer, what string, cond func([]historyNote) bool) []historyNote {
	t.Helper()
	for {
		var h []historyNote
		c.call("history", map[string]any{"with": peer, "limit": 1000}, &h)
		if cond(h) {
			return h
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %s: history never got there (%d messages)\nlogs:\n%s", c.name, what, len(h), c.logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func countStates(h []historyNote, dir string, states ...string) int {
	n := 0
	for _, m := range h {
		for _, s := range states {
			if m.Direction == dir && m.State == s {
				n++
			}
		}
	}
	return n
}

// TestMailboxBetweenProcesses: alice writes 100 messages to bob, who is
// offline, and quits; the registry restarts; bob starts and gets all 100,
// in order, once; alice starts again and sees every one delivered. The
// registry's data directory never holds the text.
func TestMailboxBetweenProcesses(t *testing.T) {
	const total = 100
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	data := t.TempDir()
	reg := startRegistry(t, data, "127.0.0.1:0")
	aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")

	bob := startClient(t, "bob", reg.url, bobDirs)
	waitLog(ctx, t, bob, "mailbox key published")
	bob.stop()

	alice := startClient(t, "alice", reg.url, aliceDirs)
	waitLog(ctx, t, alice, "mailbox key published")
	for i := range total {
		alice.call("send", map[string]any{"to": "bob", "text": fmt.Sprintf("parked secret %03d", i)}, nil)
	}
	waitHistory(ctx, t, alice, "bob", "all stored", func(h []historyNote) bool {
		return countStates(h, "out", "stored") == total
	})
	alice.stop()

	// The registry holds only ciphertext: no message text anywhere in its data.
	err := filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "parked secret") {
			t.Errorf("%s holds message text", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(data, "mailbox.jsonl")); err != nil || strings.Count(string(b), "\n") < total {
		t.Fatalf("mailbox log: %d lines, %v; want the %d parked mails", strings.Count(string(b), "\n"), err, total)
	}

	// A registry restart loses no mail.
	reg.stop()
	reg = startRegistry(t, data, "127.0.0.1:0")

	bob = startClient(t, "bob", reg.url, bobDirs)
	h := waitHistory(ctx, t, bob, "alice", "all 100 received", func(h []historyNote) bool { return len(h) >= total })
	if len(h) != total {
		t.Fatalf("bob has %d messages, want %d once each", len(h), total)
	}
	for i, m := range h {
		if want := fmt.Sprintf("parked secret %03d", i); m.Text != want || m.Direction != "in" {
			t.Fatalf("bob's history[%d] = %q (%s), want %q in order", i, m.Text, m.Direction, want)
		}
	}

	alice = startClient(t, "alice", reg.url, aliceDirs)
	waitHistory(ctx, t, alice, "bob", "all delivered", func(h []historyNote) bool {
		return countStates(h, "out", "delivered", "read") == total
	})
	alice.stop()
	bob.stop()
}
