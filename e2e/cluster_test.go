package e2e_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/internal/redistest"
)

// failoverBound is how soon the clients of a killed registry node must be
// registered at another node (issue 14).
const failoverBound = 5 * time.Second

// TestRegistryClusterOnRedis runs three `chatx registry --store redis://`
// processes on one real redis-server: alice at node 1 and bob at node 2
// see each other online and chat; carol at node 3 sees both. Node 1 is
// killed with SIGKILL: alice is registered at another node within
// failoverBound, every client still sees every other online, and alice
// and bob chat again.
func TestRegistryClusterOnRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var nodes []*registryProc
	for range 3 {
		nodes = append(nodes, startRegistryIn(t, nil, t.TempDir(), "127.0.0.1:0", "--relay-listen", "127.0.0.1:0", "--store", srv.URL(0)))
	}
	urls := func(i ...int) string {
		var out []string
		for _, n := range i {
			out = append(out, nodes[n].url)
		}
		return strings.Join(out, ",")
	}
	alice := startClient(t, "alice", urls(0, 1, 2), newDirs(t, "alice"))
	bob := startClient(t, "bob", urls(1, 2, 0), newDirs(t, "bob"))
	carol := startClient(t, "carol", urls(2, 0, 1), newDirs(t, "carol"))
	for _, c := range []*rpcClient{alice, bob, carol} {
		for _, peer := range []string{"alice", "bob", "carol"} {
			if peer != c.name {
				c.waitOnline(ctx, peer)
			}
		}
	}
	chat := func(from, to *rpcClient, text string) {
		t.Helper()
		var sent struct{ ID string }
		from.call("send", map[string]any{"to": to.name, "text": text}, &sent)
		to.waitNote(ctx, "message", func(p json.RawMessage) bool {
			var m messageNote
			return json.Unmarshal(p, &m) == nil && m.ID == sent.ID && m.From == from.name && m.Text == text
		})
		from.waitNote(ctx, "delivered", func(p json.RawMessage) bool {
			var d struct{ ID string }
			return json.Unmarshal(p, &d) == nil && d.ID == sent.ID
		})
	}
	chat(alice, bob, "hello bob, from node 1")
	chat(bob, alice, "hello alice, from node 2")

	registeredAgain := regexp.MustCompile(`registered peer alice at`)
	before := []int{len(registeredAgain.FindAllString(nodes[1].out.String(), -1)), len(registeredAgain.FindAllString(nodes[2].out.String(), -1))}
	_ = nodes[0].cmd.Process.Kill()
	<-nodes[0].exited
	killed := time.Now()
	fctx, fcancel := context.WithTimeout(ctx, failoverBound)
	defer fcancel()
	for {
		moved := len(registeredAgain.FindAllString(nodes[1].out.String(), -1)) > before[0] ||
			len(registeredAgain.FindAllString(nodes[2].out.String(), -1)) > before[1]
		if moved {
			break
		}
		select {
		case <-fctx.Done():
			t.Fatalf("alice not registered at another node within %v of node 1's SIGKILL\nalice:\n%s", failoverBound, alice.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Logf("alice registered at another node %v after node 1 was killed", time.Since(killed).Round(time.Millisecond))
	for _, c := range []*rpcClient{alice, bob, carol} {
		for _, peer := range []string{"alice", "bob", "carol"} {
			if peer != c.name {
				c.waitOnline(ctx, peer)
			}
		}
	}
	chat(alice, bob, "still here, from another node")
	chat(carol, alice, "and from node 3")
}
