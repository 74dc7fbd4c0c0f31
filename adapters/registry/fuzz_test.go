package registry_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/ports"
)

// FuzzPresenceStream feeds arbitrary bytes to the client as a registry's
// presence stream. Invariant: no panic or hang, and every peer event the
// client passes on carries a valid name and a 32-byte key.
func FuzzPresenceStream(f *testing.F) {
	f.Add([]byte("event: presence\ndata: {\"name\":\"alice\",\"key\":\"" + "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=" + "\",\"online\":true,\"endpoints\":{\"link\":[\"1.2.3.4:5\"],\"file\":[]}}\n\n"))
	f.Add([]byte("event: presence\ndata: {\"name\":\"ALICE\",\"key\":\"AAAA\",\"online\":true}\n\n"))
	f.Add([]byte(": ping\n\nevent: synced\ndata: {}\n\nevent: resync\ndata: {}\n\n"))
	f.Add([]byte("event: presence\r\ndata: {\"name\":\"\u202ebob\",\"key\":\"\",\"online\":false}\r\n\r\n"))
	f.Add([]byte("data: " + string(make([]byte, 70000)) + "\n\n"))
	f.Add([]byte("event: signal\ndata: {\"from\":\"alice\",\"key\":\"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\",\"payload\":\"aGk=\"}\n\n"))
	f.Add([]byte("event: presence\ndata: {\"name\":\"alice\",\"key\":\"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\",\"online\":true,\"endpoints\":{\"link\":[],\"file\":[\"1.2.3.4:5\"]},\"candidates\":[{\"type\":\"srflx\",\"net\":\"udp\",\"addr\":\"1.2.3.4:5\",\"scope\":\"public\"}],\"nat\":\"endpoint-dependent\"}\n\n"))

	var body atomic.Pointer[[]byte]
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		if b := body.Load(); b != nil {
			_, _ = w.Write(*b)
		}
	}))
	f.Cleanup(srv.Close)
	url := registry.RegistryURL(srv.URL + "/#sha256=" + registry.Fingerprint(srv.Certificate().Raw))

	f.Fuzz(func(t *testing.T, data []byte) {
		body.Store(&data)
		c, cleanup, err := registry.NewClient(registry.ClientConfig{URL: url, MinBackoff: time.Hour}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		events, err := c.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for ev := range events {
			switch ev.Kind {
			case ports.PeerChanged:
				if ev.Peer.Name().IsZero() || len(ev.Peer.Identity.PublicKey()) != ed25519.PublicKeySize {
					t.Fatalf("invalid peer passed on: %+v", ev.Peer)
				}
			case ports.Disconnected:
				cancel() // the stream ended: done with this input
			}
		}
	})
}
