package registry_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// A registry answering with a redirect to plain http must not make the
// client follow it: the request (and later the session token) would leave
// the pinned TLS connection.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	var leaked atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Add(1)
		w.WriteHeader(http.StatusTeapot)
	}))
	defer plain.Close()
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	url := registry.RegistryURL(redirector.URL + "/#sha256=" + registry.Fingerprint(redirector.Certificate().Raw))
	c := newClient(t, url, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	err := c.Register(ctx, newLocal(t, "alice"), domain.Endpoints{})
	var apiErr *registry.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTemporaryRedirect || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("Register through a redirecting registry: %v; want an APIError naming the redirect", err)
	}
	if _, err := c.Lookup(ctx, domain.MustUsername("bob")); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("Lookup through a redirecting registry: %v; want a redirect error", err)
	}
	if n := leaked.Load(); n != 0 {
		t.Fatalf("the plain-http target got %d requests; want 0", n)
	}
}

// openStream opens an anonymous presence stream and reads up to its
// snapshot's end; it returns the status and, on 200, a closer.
func openStream(t *testing.T, hc *http.Client, base string) (int, []byte, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events", nil)
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, nil
	}
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "event: synced") {
			return http.StatusOK, nil, func() { cancel(); resp.Body.Close() }
		}
	}
}

// One address cannot hold more than its cap of presence streams, so idle
// streams from one place cannot use up the connection cap for everyone.
func TestStreamsCappedPerClient(t *testing.T) {
	t.Parallel()
	cfg := fastConfig(t.TempDir(), "")
	cfg.MaxStreamsLoopback = 3
	ts := startServer(t, cfg, app.RegistryOptions{})
	hc, base := rawClient(ts)
	var closers []func()
	for range 3 {
		code, b, closeFn := openStream(t, hc, base)
		if code != http.StatusOK {
			t.Fatalf("stream within the cap: %d %s", code, b)
		}
		closers = append(closers, closeFn)
	}
	code, b, _ := openStream(t, hc, base)
	if code != http.StatusTooManyRequests || errCode(t, b) != "rate_limited" {
		t.Fatalf("stream over the cap: %d %s, want 429 rate_limited", code, b)
	}
	closers[0]()
	waitFor(t, 10*time.Second, "a slot freed", func() bool { return ts.srv.Streams() == 2 })
	code, b, closeFn := openStream(t, hc, base)
	if code != http.StatusOK {
		t.Fatalf("stream after one closed: %d %s", code, b)
	}
	closeFn()
	for _, c := range closers[1:] {
		c()
	}
}

// clientFrom is a raw client whose connections come from the loopback
// address src (any of 127.0.0.0/8 works on Linux).
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// One address hammering POST /v1/challenges is stopped by its rate limit
// before it fills the registry's challenge table, so another address still
// gets challenges.
func TestOneClientCannotExhaustChallenges(t *testing.T) {
	t.Parallel()
	cfg := fastConfig(t.TempDir(), "")
	cfg.ChallengeRate = registry.Rate{PerSecond: 0.01, Burst: 20}
	ts := startServer(t, cfg, app.RegistryOptions{MaxChallenges: 50})
	_, base := rawClient(ts)
	attacker, other := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	var got, limited int
	for range 200 {
		switch code, b, _ := call(t, attacker, "POST", base+"/v1/challenges", nil, nil); code {
		case http.StatusCreated:
			got++
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("attacker's challenge: %d %s", code, b)
		}
	}
	if got != 20 || limited != 180 {
		t.Fatalf("one address got %d challenges and %d refusals; want the burst of 20, then 429", got, limited)
	}
	if code, b, _ := call(t, other, "POST", base+"/v1/challenges", nil, nil); code != http.StatusCreated {
		t.Fatalf("another address refused after the flood: %d %s", code, b)
	}
}

// A hostile registry streaming endless distinct names cannot grow the
// client's peer table past MaxPeers.
func TestClientBoundsPeersFromStream(t *testing.T) {
	t.Parallel()
	const maxPeers, sent = 10, 50
	peerEvent := func(name string, key []byte) string {
		return fmt.Sprintf("event: presence\ndata: {\"name\":%q,\"key\":%q,\"online\":true,\"endpoints\":{\"link\":[\"10.0.0.1:7000\"],\"file\":[]}}\n\n",
			name, base64.StdEncoding.EncodeToString(key))
	}
	keys := make([][]byte, sent)
	for i := range keys {
		keys[i] = newLocal(t, "someone").PublicKey()
	}
	hostile := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		var b strings.Builder
		for i := range sent {
			b.WriteString(peerEvent(fmt.Sprintf("user%03d", i), keys[i]))
		}
		b.WriteString("event: synced\ndata: {}\n\n")
		b.WriteString(peerEvent("user000", keys[0])) // marker: a known name again
		_, _ = io.WriteString(w, b.String())
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer hostile.Close()
	c, cleanup, err := registry.NewClient(registry.ClientConfig{
		URL:      registry.RegistryURL(hostile.URL + "/#sha256=" + registry.Fingerprint(hostile.Certificate().Raw)),
		MaxPeers: maxPeers,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	events, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for seen["user000"] < 2 {
		select {
		case e := <-events:
			if e.Kind == ports.PeerChanged {
				seen[e.Peer.Name().String()]++
			}
		case <-ctx.Done():
			t.Fatalf("timed out; saw %d names", len(seen))
		}
	}
	if len(seen) != maxPeers {
		t.Fatalf("client passed on %d distinct names, want at most MaxPeers = %d", len(seen), maxPeers)
	}
	// A new watcher gets the client's table: it holds MaxPeers peers.
	late, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for len(late) > 0 {
		if e := <-late; e.Kind == ports.PeerChanged {
			n++
		}
	}
	if n != maxPeers {
		t.Fatalf("client keeps %d online peers, want MaxPeers = %d", n, maxPeers)
	}
}
