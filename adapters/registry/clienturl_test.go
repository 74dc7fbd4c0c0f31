package registry_test

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/ports"
)

// TestClientURLNamesTheListeningHost: --listen 127.0.0.1:5000 prints that
// host; only a listener on every address leaves HOST to fill in.
func TestClientURLNamesTheListeningHost(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:5000": "https://127.0.0.1:5000/#sha256=ab",
		"10.1.2.3:443":   "https://10.1.2.3:443/#sha256=ab",
		"[::1]:5000":     "https://[::1]:5000/#sha256=ab",
		"0.0.0.0:5000":   "https://HOST:5000/#sha256=ab",
		"[::]:5000":      "https://HOST:5000/#sha256=ab",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := registry.ClientURL(a, "ab"); got != want {
			t.Errorf("listening on %s: client_url %q, want %q", addr, got, want)
		}
	}
}

func TestCertChangedErrorIsThePortError(t *testing.T) {
	err := fmt.Errorf("register dave: challenge: %w", &registry.CertChangedError{Host: "h", Pinned: "a", Got: "b", Source: "URL"})
	if !errors.Is(err, ports.ErrDirectoryCertChanged) {
		t.Fatal("a certificate mismatch is not ports.ErrDirectoryCertChanged: the UI cannot warn")
	}
}
