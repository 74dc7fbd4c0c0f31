package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type groupMessageNote struct {
	ID    string `json:"id"`
	Group string `json:"group"`
	From  string `json:"from"`
	Text  string `json:"text"`
}

type groupNote struct {
	ID      string `json:"id"`
	Epoch   string `json:"epoch"`
	Member  bool   `json:"member"`
	Members []struct {
		Name  string `json:"name"`
		Admin bool   `json:"admin"`
	} `json:"members"`
}

// pollGroup calls groupInfo until ok accepts the answer.
func pollGroup(ctx context.Context, t *testing.T, c *rpcClient, id string, ok func(groupNote) bool) groupNote {
	t.Helper()
	for {
		var g groupNote
		if err := c.tryCall("groupInfo", map[string]any{"id": id}, &g); err == nil && ok(g) {
			return g
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: group %s not as expected: %v\nlogs:\n%s", c.name, id, ctx.Err(), c.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func groupHistory(t *testing.T, c *rpcClient, id string) []groupMessageNote {
	t.Helper()
	var h []groupMessageNote
	c.call("history", map[string]any{"group": id, "limit": 1000}, &h)
	return h
}

// TestGroupBetweenProcesses runs three clients over real links (TCP with
// mutual TLS, SQLite profiles, the HTTPS registry): a group is made, its
// messages reach every member in each sender's order, a removed member
// gets nothing more, and a file to the group is one offer per member.
func TestGroupBetweenProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	alice := startClient(t, "alice", reg.url, newDirs(t, "alice"))
	bobDirs := newDirs(t, "bob")
	bob := startClient(t, "bob", reg.url, bobDirs, "--auto-accept")
	carol := startClient(t, "carol", reg.url, newDirs(t, "carol"))
	for _, c := range []*rpcClient{alice, bob, carol} {
		for _, peer := range []string{"alice", "bob", "carol"} {
			if peer != c.name {
				c.waitOnline(ctx, peer)
			}
		}
	}
	var created struct{ ID string }
	alice.call("createGroup", map[string]any{"name": "team", "members": []string{"bob", "carol"}}, &created)
	id := created.ID
	for _, c := range []*rpcClient{bob, carol} {
		pollGroup(ctx, t, c, id, func(g groupNote) bool { return g.Member && len(g.Members) == 3 })
	}

	var sent groupMessageNote
	alice.call("send", map[string]any{"group": id, "text": "hello team"}, &sent)
	for _, c := range []*rpcClient{bob, carol} {
		c.waitNote(ctx, "message", func(p json.RawMessage) bool {
			var m groupMessageNote
			return json.Unmarshal(p, &m) == nil && m.ID == sent.ID && m.Group == id && m.From == "alice" && m.Text == "hello team"
		})
	}
	const n = 50
	for i := range n {
		bob.call("send", map[string]any{"group": id, "text": fmt.Sprintf("bob %02d", i)}, nil)
	}
	for _, c := range []*rpcClient{alice, carol} {
		deadline := time.Now().Add(time.Minute)
		for {
			var fromBob []string
			for _, m := range groupHistory(t, c, id) {
				if m.From == "bob" {
					fromBob = append(fromBob, m.Text)
				}
			}
			if len(fromBob) == n {
				for i, text := range fromBob {
					if text != fmt.Sprintf("bob %02d", i) {
						t.Fatalf("%s: bob's message %d is %q: order lost", c.name, i, text)
					}
				}
				break
			}
			if len(fromBob) > n || time.Now().After(deadline) {
				t.Fatalf("%s has %d of bob's %d messages", c.name, len(fromBob), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var del struct{ Delivered, Of int }
	for deadline := time.Now().Add(time.Minute); del.Delivered != 2; time.Sleep(50 * time.Millisecond) {
		alice.call("groupDeliveries", map[string]any{"id": id, "message": sent.ID}, &del)
		if time.Now().After(deadline) {
			t.Fatalf("first message delivered to %d of %d", del.Delivered, del.Of)
		}
	}

	alice.call("removeMember", map[string]any{"id": id, "name": "carol"}, nil)
	pollGroup(ctx, t, bob, id, func(g groupNote) bool { return len(g.Members) == 2 })
	pollGroup(ctx, t, carol, id, func(g groupNote) bool { return !g.Member })
	var after groupMessageNote
	alice.call("send", map[string]any{"group": id, "text": "carol is gone"}, &after)
	bob.waitNote(ctx, "message", func(p json.RawMessage) bool {
		var m groupMessageNote
		return json.Unmarshal(p, &m) == nil && m.ID == after.ID
	})
	var ds struct {
		Of      int
		Members []struct{ Member string }
	}
	alice.call("groupDeliveries", map[string]any{"id": id, "message": after.ID}, &ds)
	if ds.Of != 1 || ds.Members[0].Member != "bob" {
		t.Fatalf("the message after the removal went to %+v", ds.Members)
	}
	for _, m := range groupHistory(t, carol, id) {
		if m.ID == after.ID {
			t.Fatal("carol received a message sent after her removal")
		}
	}

	// A file to the group: one offer, to bob only now; he accepts it.
	src := filepath.Join(t.TempDir(), "notes.txt")
	data := bytes.Repeat([]byte("group file\n"), 10000)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var offers struct {
		Transfers []transferNote `json:"transfers"`
	}
	alice.call("sendFile", map[string]any{"group": id, "path": src}, &offers)
	if len(offers.Transfers) != 1 {
		t.Fatalf("%d offers for a group of two", len(offers.Transfers))
	}
	alice.waitNote(ctx, "transfer", func(p json.RawMessage) bool {
		var tr transferNote
		return json.Unmarshal(p, &tr) == nil && tr.ID == offers.Transfers[0].ID && tr.State == "completed"
	})
	got, err := os.ReadFile(filepath.Join(bobDirs.downloads, "notes.txt"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob's copy of the group file: %d bytes, %v", len(got), err)
	}
}
