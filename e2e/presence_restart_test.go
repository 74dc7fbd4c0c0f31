package e2e_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPeerKilledDuringTransferShowsOnlineAgain kills one side of a running
// transfer with SIGKILL, starts it again on the same profile, and checks
// that both see each other online again within seconds (issue 10, item 8:
// a peer stayed offline for over a minute, until a message was sent).
func TestPeerKilledDuringTransferShowsOnlineAgain(t *testing.T) {
	for _, tc := range []struct {
		name         string
		killReceiver bool
		lan          string
	}{
		{"receiver", true, "--lan=false"},
		{"sender", false, "--lan=false"},
		{"receiver-lan", true, "--lan=true"},
	} {
		t.Run(tc.name, func(t *testing.T) { testKilledDuringTransfer(t, tc.killReceiver, tc.lan) })
	}
}

func testKilledDuringTransfer(t *testing.T, killReceiver bool, lan string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")
	alice := startClient(t, "alice", reg.url, aliceDirs, lan)
	bob := startClient(t, "bob", reg.url, bobDirs, "--auto-accept", lan)
	alice.waitOnline(ctx, "bob")
	bob.waitOnline(ctx, "alice")

	src := filepath.Join(t.TempDir(), "big.bin")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var offer transferNote
	alice.call("sendFile", map[string]any{"to": "bob", "path": src}, &offer)
	bob.waitNote(ctx, "transfer", func(p json.RawMessage) bool {
		var tr transferNote
		return json.Unmarshal(p, &tr) == nil && tr.ID == offer.ID && tr.Bytes > 0
	})
	if killReceiver {
		bob.kill()
		bob = startClient(t, "bob", reg.url, bobDirs, "--auto-accept", lan)
	} else {
		alice.kill()
		alice = startClient(t, "alice", reg.url, aliceDirs, lan)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	seesOnline(wctx, t, alice, "bob", reg, bob)
	seesOnline(wctx, t, bob, "alice", reg, alice)
}

// seesOnline fails the test unless c sees peer online before ctx ends.
func seesOnline(ctx context.Context, t *testing.T, c *rpcClient, peer string, reg *registryProc, other *rpcClient) {
	t.Helper()
	if err := c.awaitOnline(ctx, peer); err != nil {
		t.Fatalf("%v (10 s after the restart)\n%s logs:\n%s\n%s logs:\n%s\nregistry logs:\n%s",
			err, c.name, c.logs.String(), other.name, other.logs.String(), reg.out.String())
	}
}
