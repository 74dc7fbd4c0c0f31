package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// listedPeer is one entry of listPeers, as far as these tests read it.
type listedPeer struct {
	Name      string `json:"name"`
	Online    bool   `json:"online"`
	Endpoints struct {
		Link []string `json:"link"`
		File []string `json:"file"`
	} `json:"endpoints"`
}

// lanPair makes two network namespaces joined by a veth pair, a LAN of two
// hosts with private addresses and no registry anywhere. It skips the test
// with a clear line where namespaces cannot be made.
func lanPair(t *testing.T) (nsA, nsB string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the LAN end-to-end test needs root for network namespaces (ip netns)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: the LAN end-to-end test needs ip(8) (iproute2)")
	}
	id := os.Getpid() % 100000
	nsA, nsB = fmt.Sprintf("lan-a%d", id), fmt.Sprintf("lan-b%d", id)
	vethA, vethB := fmt.Sprintf("lan-va%d", id), fmt.Sprintf("lan-vb%d", id)
	run := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		_ = run("netns", "del", nsA) // takes the veth pair with it
		_ = run("netns", "del", nsB)
	})
	steps := [][]string{
		{"netns", "add", nsA},
		{"netns", "add", nsB},
		{"link", "add", vethA, "type", "veth", "peer", "name", vethB},
		{"link", "set", vethA, "netns", nsA},
		{"link", "set", vethB, "netns", nsB},
		{"-n", nsA, "addr", "add", "10.231.0.1/24", "dev", vethA},
		{"-n", nsB, "addr", "add", "10.231.0.2/24", "dev", vethB},
		{"-n", nsA, "link", "set", vethA, "up"},
		{"-n", nsB, "link", "set", vethB, "up"},
		{"-n", nsA, "link", "set", "lo", "up"},
		{"-n", nsB, "link", "set", "lo", "up"},
	}
	for i, s := range steps {
		if err := run(s...); err != nil {
			if i == 0 {
				t.Skipf("SKIP: cannot make network namespaces here: %v", err)
			}
			t.Fatal(err)
		}
	}
	return nsA, nsB
}

// Two clients on a LAN of two namespaces find each other by multicast, chat
// both ways and send a file; when one leaves, the other sees it offline at
// once (the signed goodbye). With --registry none, and with a registry that
// cannot be reached (the LAN never waits for it).
func TestLANWithoutARegistry(t *testing.T) {
	for _, c := range []struct{ name, registry string }{
		{"registry none", "none"},
		{"registry unreachable", "https://10.231.0.1:9/"},
	} {
		t.Run(c.name, func(t *testing.T) { lanChat(t, c.registry) })
	}
}

func lanChat(t *testing.T, registryURL string) {
	nsA, nsB := lanPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")
	lanOnly := []string{"--listen-tcp", ":0", "--listen-udp", ":0"}
	alice := startClientIn(t, []string{"ip", "netns", "exec", nsA}, "alice", registryURL, aliceDirs, lanOnly...)
	bob := startClientIn(t, []string{"ip", "netns", "exec", nsB}, "bob", registryURL, bobDirs, append(lanOnly, "--auto-accept")...)

	alice.waitOnline(ctx, "bob")
	bob.waitOnline(ctx, "alice")

	var sent messageNote
	alice.call("send", map[string]any{"to": "bob", "text": "hello over the LAN"}, &sent)
	bob.waitNote(ctx, "message", func(p json.RawMessage) bool {
		var m messageNote
		return json.Unmarshal(p, &m) == nil && m.ID == sent.ID && m.From == "alice" && m.Text == "hello over the LAN"
	})
	alice.waitNote(ctx, "delivered", func(p json.RawMessage) bool {
		var d struct{ ID string }
		return json.Unmarshal(p, &d) == nil && d.ID == sent.ID
	})
	bob.call("send", map[string]any{"to": "alice", "text": "hi alice, no server here"}, nil)
	alice.waitNote(ctx, "message", func(p json.RawMessage) bool {
		var m messageNote
		return json.Unmarshal(p, &m) == nil && m.From == "bob" && m.Text == "hi alice, no server here"
	})

	src := filepath.Join(t.TempDir(), "lan.bin")
	data := make([]byte, 2<<20)
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
	got, err := os.ReadFile(filepath.Join(bobDirs.downloads, "lan.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received file: %d bytes, %v; want the %d bytes sent", len(got), err, len(data))
	}

	// bob's peer view carries alice's LAN address, and bob leaves.
	var peers []listedPeer
	alice.call("listPeers", map[string]any{}, &peers)
	if len(peers) != 1 || peers[0].Name != "bob" || !peers[0].Online ||
		!slices.ContainsFunc(peers[0].Endpoints.Link, func(a string) bool { return strings.HasPrefix(a, "10.231.0.2:") }) {
		t.Fatalf("alice's peers %+v: want bob online at his LAN address", peers)
	}
	for _, a := range append(peers[0].Endpoints.Link, peers[0].Endpoints.File...) {
		if !strings.HasPrefix(a, "10.231.0.2:") {
			t.Fatalf("bob announced %s, which is not an address of the LAN interface", a)
		}
	}
	bob.stop()
	alice.waitNote(ctx, "presence", func(p json.RawMessage) bool {
		var pr struct {
			Name   string `json:"name"`
			Online bool   `json:"online"`
		}
		return json.Unmarshal(p, &pr) == nil && pr.Name == "bob" && !pr.Online
	})
}

// With a registry and the LAN together (the default), a peer both know is
// one peer whose LAN addresses come first, and a peer only the LAN knows
// (carol, --registry none) is listed and reachable too.
func TestLANBesideARegistry(t *testing.T) {
	nsA, nsB := lanPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inA, inB := []string{"ip", "netns", "exec", nsA}, []string{"ip", "netns", "exec", nsB}
	reg := startRegistryIn(t, inA, t.TempDir(), "10.231.0.1:0", "--relay-listen", "10.231.0.1:0")
	listen := []string{"--listen-tcp", ":0", "--listen-udp", ":0"}
	alice := startClientIn(t, inA, "alice", reg.url, newDirs(t, "alice"), listen...)
	bob := startClientIn(t, inB, "bob", reg.url, newDirs(t, "bob"), listen...)
	carol := startClientIn(t, inB, "carol", "none", newDirs(t, "carol"), listen...)

	alice.waitOnline(ctx, "bob")
	alice.waitOnline(ctx, "carol")
	carol.waitOnline(ctx, "alice")
	var peers []listedPeer
	// bob's LAN announcement may land a round after the registry's news.
	for {
		alice.call("listPeers", map[string]any{}, &peers)
		i := slices.IndexFunc(peers, func(p listedPeer) bool { return p.Name == "bob" })
		if i >= 0 && len(peers[i].Endpoints.Link) > 0 && strings.HasPrefix(peers[i].Endpoints.Link[0], "10.231.0.2:") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("alice never listed bob at his LAN address first: %+v", peers)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if len(peers) != 2 {
		t.Fatalf("alice's peers %+v: want bob and carol, once each", peers)
	}
	for _, to := range []*rpcClient{bob, carol} {
		var sent messageNote
		alice.call("send", map[string]any{"to": to.name, "text": "hi " + to.name}, &sent)
		to.waitNote(ctx, "message", func(p json.RawMessage) bool {
			var m messageNote
			return json.Unmarshal(p, &m) == nil && m.ID == sent.ID && m.From == "alice"
		})
	}
}
