package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFilePathChosenAndShown sends the same file under each --file-path
// between two processes on loopback, where the message link runs over
// direct TCP: auto and tcp ride TCP + TLS 1.3, udp rides QUIC; the
// sender's transfer object names the path and the file arrives identical.
// A file of 64 MiB goes striped over 2 TLS connections with auto (stream
// version 3 on the TCP path), as alice's debug log says.
func TestFilePathChosenAndShown(t *testing.T) {
	for _, tc := range []struct {
		name, mode, want string
		size             int
		stripes          bool
	}{
		{"auto", "auto", "tcp", 3<<20 + 17, false},
		{"udp", "udp", "udp", 3<<20 + 17, false},
		{"tcp", "tcp", "tcp", 3<<20 + 17, false},
		{"auto, 64 MiB striped", "auto", "tcp", 64 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
			aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")
			// Two stripes whatever the machine's CPUs (the default is
			// min(4, GOMAXPROCS)).
			alice := startClient(t, "alice", reg.url, aliceDirs, "--file-path", tc.mode, "--file-stripes", "2", "-v")
			bob := startClient(t, "bob", reg.url, bobDirs, "--auto-accept", "--file-stripes", "2")
			alice.waitOnline(ctx, "bob")
			bob.waitOnline(ctx, "alice")
			// The message link up first, so that auto sees how it runs.
			alice.call("send", map[string]any{"to": "bob", "text": "a file follows"}, nil)
			alice.waitNote(ctx, "delivered", func(json.RawMessage) bool { return true })

			src := filepath.Join(t.TempDir(), "data.bin")
			data := make([]byte, tc.size)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(src, data, 0o600); err != nil {
				t.Fatal(err)
			}
			var offer struct {
				ID   string `json:"id"`
				Path string `json:"path"`
			}
			alice.call("sendFile", map[string]any{"to": "bob", "path": src}, &offer)
			if offer.Path != "" {
				t.Fatalf("an offer names path %q before a byte moved", offer.Path)
			}
			var path string
			alice.waitNote(ctx, "transfer", func(p json.RawMessage) bool {
				var tr struct{ ID, State, Path string }
				if json.Unmarshal(p, &tr) != nil || tr.ID != offer.ID || tr.State != "completed" {
					return false
				}
				path = tr.Path
				return true
			})
			if path != tc.want {
				t.Fatalf("--file-path %s: the completed transfer rode %q, want %q", tc.mode, path, tc.want)
			}
			// The receiver names the path too (its port is told the carrier).
			var bobPath string
			bob.waitNote(ctx, "transfer", func(p json.RawMessage) bool {
				var tr struct{ ID, State, Path string }
				if json.Unmarshal(p, &tr) != nil || tr.ID != offer.ID || tr.State != "completed" {
					return false
				}
				bobPath = tr.Path
				return true
			})
			if bobPath != tc.want {
				t.Fatalf("--file-path %s: bob's completed transfer rode %q, want %q", tc.mode, bobPath, tc.want)
			}
			var listed []struct{ ID, Path string }
			bob.call("transfers", map[string]any{}, &listed)
			found := false
			for _, tr := range listed {
				if tr.ID == offer.ID {
					found = true
					if tr.Path != tc.want {
						t.Fatalf("bob's transfers lists path %q, want %q", tr.Path, tc.want)
					}
				}
			}
			if !found {
				t.Fatalf("bob's transfers does not list %s", offer.ID)
			}
			got, err := os.ReadFile(filepath.Join(bobDirs.downloads, "data.bin"))
			if err != nil {
				t.Fatalf("received file: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("the received file differs")
			}
			want := "path=" + tc.want + " stripes=1"
			if tc.stripes {
				want = "path=tcp stripes=2"
			}
			if logs := alice.logs.String(); !strings.Contains(logs, "first data byte sent") || !strings.Contains(logs, want) {
				t.Fatalf("alice's log does not name %q for the first data byte:\n%s", want, logs)
			}
		})
	}
}
