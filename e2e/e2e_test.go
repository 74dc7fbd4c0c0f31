package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type messageNote struct {
	ID        string `json:"id"`
	From      string `json:"from"`
	Direction string `json:"direction"`
	Text      string `json:"text"`
}

type transferNote struct {
	ID        string `json:"id"`
	Direction string `json:"direction"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Bytes     int64  `json:"bytes"`
	Total     int64  `json:"total"`
}

// TestChatAndFileBetweenProcesses runs the built binary as a registry and two
// `chatx jsonrpc` clients: they find each other, chat both ways with
// delivery acknowledgements, and a file arrives byte for byte.
func TestChatAndFileBetweenProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")
	alice := startClient(t, "alice", reg.url, aliceDirs)
	bob := startClient(t, "bob", reg.url, bobDirs, "--auto-accept")

	var who struct {
		Name        string `json:"name"`
		Fingerprint string `json:"fingerprint"`
	}
	alice.call("whoami", map[string]any{}, &who)
	if who.Name != "alice" || len(who.Fingerprint) != 79 {
		t.Fatalf("whoami = %+v", who)
	}
	alice.waitOnline(ctx, "bob")
	bob.waitOnline(ctx, "alice")

	// alice → bob, acknowledged.
	var sent messageNote
	alice.call("send", map[string]any{"to": "bob", "text": "hello bob, [red]tags stay text[-]"}, &sent)
	bob.waitNote(ctx, "message", func(p json.RawMessage) bool {
		var m messageNote
		return json.Unmarshal(p, &m) == nil && m.ID == sent.ID && m.From == "alice" && m.Text == "hello bob, [red]tags stay text[-]"
	})
	alice.waitNote(ctx, "delivered", func(p json.RawMessage) bool {
		var d struct{ ID string }
		return json.Unmarshal(p, &d) == nil && d.ID == sent.ID
	})
	// bob → alice.
	bob.call("send", map[string]any{"to": "alice", "text": "hi alice"}, nil)
	alice.waitNote(ctx, "message", func(p json.RawMessage) bool {
		var m messageNote
		return json.Unmarshal(p, &m) == nil && m.From == "bob" && m.Text == "hi alice"
	})

	// A 5 MiB file alice → bob (bob accepts automatically).
	src := filepath.Join(t.TempDir(), "photo of us.bin")
	data := make([]byte, 5<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var offer transferNote
	alice.call("sendFile", map[string]any{"to": "bob", "path": src}, &offer)
	bob.waitNote(ctx, "transfer", func(p json.RawMessage) bool {
		var tr transferNote
		return json.Unmarshal(p, &tr) == nil && tr.ID == offer.ID && tr.State == "completed"
	})
	alice.waitNote(ctx, "transfer", func(p json.RawMessage) bool {
		var tr transferNote
		return json.Unmarshal(p, &tr) == nil && tr.ID == offer.ID && tr.State == "completed"
	})
	got, err := os.ReadFile(filepath.Join(bobDirs.downloads, "photo of us.bin"))
	if err != nil {
		t.Fatalf("received file: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received file differs: sha256 %x, want %x", sha256.Sum256(got), sha256.Sum256(data))
	}
	leftovers, _ := filepath.Glob(filepath.Join(bobDirs.downloads, "*.part"))
	if len(leftovers) != 0 {
		t.Fatalf("part files left behind: %v", leftovers)
	}
}

// TestReceiverKilledMidStreamGetsEveryMessageOnce kills the receiving process
// with SIGKILL while messages stream in, starts it again on the same profile,
// and checks that every message is in its history exactly once, in order.
func TestReceiverKilledMidStreamGetsEveryMessageOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")
	alice := startClient(t, "alice", reg.url, aliceDirs)
	bob := startClient(t, "bob", reg.url, bobDirs)
	alice.waitOnline(ctx, "bob")

	const total = 300
	received := make(chan struct{}, total)
	go func() {
		for n := range bob.notes {
			if n.Method == "message" {
				received <- struct{}{}
			}
		}
	}()
	sendDone := make(chan error, 1)
	go func() {
		for i := 0; i < total; i++ {
			if err := alice.tryCall("send", map[string]any{"to": "bob", "text": fmt.Sprintf("message %04d", i)}, nil); err != nil {
				sendDone <- err
				return
			}
		}
		sendDone <- nil
	}()
	// Kill bob once a few dozen messages have arrived.
	for i := 0; i < 40; i++ {
		select {
		case <-received:
		case <-ctx.Done():
			t.Fatalf("bob received only %d messages before the kill\nlogs:\n%s", i, bob.logs.String())
		}
	}
	bob.kill()
	if err := <-sendDone; err != nil {
		t.Fatalf("send: %v", err)
	}

	bob2 := startClient(t, "bob", reg.url, bobDirs)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var history []messageNote
		bob2.call("history", map[string]any{"with": "alice", "limit": 1000}, &history)
		if len(history) >= total {
			seen := map[string]bool{}
			for i, m := range history {
				if seen[m.ID] {
					t.Fatalf("message %s stored twice", m.ID)
				}
				seen[m.ID] = true
				if want := fmt.Sprintf("message %04d", i); m.Text != want {
					t.Fatalf("history[%d] = %q, want %q (order lost)", i, m.Text, want)
				}
			}
			if len(history) != total {
				t.Fatalf("history has %d messages, want %d", len(history), total)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart bob has %d of %d messages\nalice logs:\n%s\nbob logs:\n%s", len(history), total, alice.logs.String(), bob2.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
