package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// startSends writes one `send` request per text to c at once, without
// waiting, and returns the channels their responses arrive on.
func (c *rpcClient) startSends(to string, texts []string) []chan rpcResponse {
	c.t.Helper()
	chans := make([]chan rpcResponse, len(texts))
	var lines []byte
	c.mu.Lock()
	for i, text := range texts {
		c.nextID++
		chans[i] = make(chan rpcResponse, 1)
		c.pending[c.nextID] = chans[i]
		req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.nextID, "method": "send",
			"params": map[string]any{"to": to, "text": text}})
		lines = append(append(lines, req...), '\n')
	}
	c.mu.Unlock()
	go func() { _, _ = c.stdin.Write(lines) }()
	return chans
}

// TestSenderKilledWhilePipeliningLosesNothing kills the sending process
// with SIGKILL while a script's pipelined sends are being stored and
// delivered, starts it again on the same profile, and checks that every
// send that was answered reaches the peer exactly once, that the peer ends
// with exactly what the sender's history kept (a message goes to the peer
// once committed, before its fsync; a killed process keeps what it
// committed), and that everything arrived in the order written.
func TestSenderKilledWhilePipeliningLosesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")
	alice := startClient(t, "alice", reg.url, aliceDirs)
	bob := startClient(t, "bob", reg.url, bobDirs)
	alice.waitOnline(ctx, "bob")

	const total = 1000 // history answers at most 1,000
	texts := make([]string, total)
	for i := range texts {
		texts[i] = fmt.Sprintf("message %04d", i)
	}
	responses := alice.startSends("bob", texts)
	answered := 0
	for answered < 200 {
		select {
		case r := <-responses[answered]:
			if r.Error != nil {
				t.Fatalf("send %d: %s", answered, r.Error.Message)
			}
			answered++
		case <-ctx.Done():
			t.Fatalf("only %d sends answered\nlogs:\n%s", answered, alice.logs.String())
		}
	}
	alice.kill()
	for answered < total { // answers that were on their way when it died
		select {
		case r := <-responses[answered]:
			if r.Error != nil {
				t.Fatalf("send %d: %s", answered, r.Error.Message)
			}
			answered++
			continue
		default:
		}
		break
	}

	alice2 := startClient(t, "alice", reg.url, aliceDirs)
	alice2.waitOnline(ctx, "bob")
	index := map[string]int{}
	for i, text := range texts {
		index[text] = i
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var theirs, ours []messageNote
		bob.call("history", map[string]any{"with": "alice", "limit": total}, &theirs)
		alice2.call("history", map[string]any{"with": "bob", "limit": total}, &ours)
		last, seen := -1, map[string]bool{}
		for _, m := range theirs {
			i, ok := index[m.Text]
			switch {
			case !ok:
				t.Fatalf("bob has a message alice never wrote: %q", m.Text)
			case seen[m.Text]:
				t.Fatalf("bob has %q twice", m.Text)
			case i < last:
				t.Fatalf("bob has %q after message %d: order lost", m.Text, last)
			}
			seen[m.Text], last = true, i
		}
		kept := map[string]bool{}
		for _, m := range ours {
			kept[m.Text] = true
		}
		for text := range seen {
			if !kept[text] {
				t.Fatalf("bob has %q, alice's history lost it", text)
			}
		}
		// Done once bob has everything alice kept (what was committed before
		// the kill: a prefix of what was answered and more, with gaps where
		// an unanswered send had not reached the store).
		if len(seen) == len(kept) {
			for i := range answered {
				if !seen[texts[i]] {
					t.Fatalf("answered send %q never reached bob", texts[i])
				}
			}
			t.Logf("%d of %d sends answered before the kill; after the restart alice keeps %d, bob has them all", answered, total, len(kept))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart bob has %d messages, %d were answered\nalice logs:\n%s", len(theirs), answered, alice2.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
