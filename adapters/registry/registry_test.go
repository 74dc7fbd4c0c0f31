package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// rawClient speaks HTTP to a test server without the Client's help.
func rawClient(ts *testServer) (*http.Client, string) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://" + ts.srv.Addr().String()
}

type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func call(t *testing.T, hc *http.Client, method, url string, body []byte, hdr map[string]string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func errCode(t *testing.T, b []byte) string {
	t.Helper()
	var e apiErr
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not a JSON error: %q (%v)", b, err)
	}
	return e.Error.Code
}

// signedBody makes a register or unregister body for name, signed by signer
// over a fresh challenge from the server.
func signedBody(t *testing.T, hc *http.Client, base string, action domain.RegistryAction, name string, signer domain.LocalIdentity, eps domain.Endpoints) []byte {
	t.Helper()
	code, b, _ := call(t, hc, "POST", base+"/v1/challenges", nil, nil)
	if code != http.StatusCreated {
		t.Fatalf("challenge: %d %s", code, b)
	}
	var cr struct{ Challenge string }
	if err := json.Unmarshal(b, &cr); err != nil {
		t.Fatal(err)
	}
	ch, err := base64.StdEncoding.DecodeString(cr.Challenge)
	if err != nil {
		t.Fatal(err)
	}
	p := domain.RegistryProof{Action: action, Name: domain.MustUsername(name), Key: signer.PublicKey(), Challenge: ch, Endpoints: eps}
	body := map[string]any{
		"key":       base64.StdEncoding.EncodeToString(signer.PublicKey()),
		"challenge": cr.Challenge,
		"signature": base64.StdEncoding.EncodeToString(p.Sign(signer)),
	}
	if action == domain.ActionRegister {
		body["endpoints"] = map[string][]string{"link": nonNil(eps.Link), "file": nonNil(eps.File)}
	}
	out, _ := json.Marshal(body)
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestRegisterLookupWatchOffline(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	ctx := t.Context()
	alice, bob := newClient(t, ts.url, t.TempDir()), newClient(t, ts.url, t.TempDir())
	bobEvents, err := bob.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	aliceID := newLocal(t, "alice")
	eps := domain.Endpoints{Link: []string{"192.168.7.7:7000"}, File: []string{"192.168.7.7:7001"}}
	if err := alice.Register(ctx, aliceID, eps); err != nil {
		t.Fatal(err)
	}
	if err := bob.Register(ctx, newLocal(t, "bob"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, bobEvents, "alice", true, 10*time.Second)

	p, err := bob.Lookup(ctx, domain.MustUsername("ALICE"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Online || !p.Identity.SameKey(aliceID.PublicKey()) {
		t.Fatalf("lookup %+v", p)
	}
	// Exactly what alice advertised: the registry no longer pairs the
	// observed TCP address with advertised ports.
	if !slices.Equal(p.Endpoints.Link, eps.Link) || !slices.Equal(p.Endpoints.File, eps.File) {
		t.Fatalf("endpoints %+v", p.Endpoints)
	}
	online, err := bob.Online(ctx)
	if err != nil || len(online) != 2 {
		t.Fatalf("online %v %v", online, err)
	}
	if _, err := bob.Lookup(ctx, domain.MustUsername("nobody")); !errors.Is(err, domain.ErrUnknownPeer) {
		t.Fatalf("lookup unknown: %v", err)
	}

	// Closing alice's client closes her stream: offline at once.
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, bobEvents, "alice", false, 10*time.Second)

	// Unregister is signed and takes bob offline.
	if err := bob.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "bob offline", func() bool { return !isOnline(ctx, ts.svc, "bob") })
}

func TestImpersonationRefused(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	ctx := t.Context()
	alice := newLocal(t, "alice")
	if err := newClient(t, ts.url, "").Register(ctx, alice, domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "ALICE", "аlice" /* Cyrillic а */, "a1ice"} {
		mallory := newLocal(t, name)
		err := newClient(t, ts.url, "").Register(ctx, mallory, domain.Endpoints{})
		if !errors.Is(err, domain.ErrNameTaken) {
			t.Errorf("%q with another key: %v, want name taken", name, err)
		}
	}

	// Mallory cannot log alice out, with her own key or a forged signature.
	hc, base := rawClient(ts)
	mallory := newLocal(t, "mallory")
	body := signedBody(t, hc, base, domain.ActionUnregister, "alice", mallory, domain.Endpoints{})
	code, b, _ := call(t, hc, "DELETE", base+"/v1/users/alice/presence", body, nil)
	if code != http.StatusConflict || errCode(t, b) != "name_taken" {
		t.Fatalf("foreign unregister: %d %s", code, b)
	}
	var forged map[string]string
	_ = json.Unmarshal(signedBody(t, hc, base, domain.ActionUnregister, "alice", mallory, domain.Endpoints{}), &forged)
	forged["key"] = base64.StdEncoding.EncodeToString(alice.PublicKey())
	fb, _ := json.Marshal(forged)
	code, b, _ = call(t, hc, "DELETE", base+"/v1/users/alice/presence", fb, nil)
	if code != http.StatusUnauthorized || errCode(t, b) != "bad_signature" {
		t.Fatalf("forged unregister: %d %s", code, b)
	}
	// Nor log in as her: a heartbeat with a guessed token.
	code, b, _ = call(t, hc, "POST", base+"/v1/users/alice/presence/heartbeat", nil, map[string]string{"Authorization": "Bearer " + strings.Repeat("A", 43)})
	if code != http.StatusUnauthorized || errCode(t, b) != "session_invalid" {
		t.Fatalf("guessed token: %d %s", code, b)
	}
	if !isOnline(ctx, ts.svc, "alice") {
		t.Fatal("alice was logged out by someone else")
	}
}

func TestReplayedRegistrationRefused(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	hc, base := rawClient(ts)
	alice := newLocal(t, "alice")
	body := signedBody(t, hc, base, domain.ActionRegister, "alice", alice, domain.Endpoints{Link: []string{"10.0.0.1:7000"}})
	code, b, _ := call(t, hc, "PUT", base+"/v1/users/alice/presence", body, nil)
	if code != http.StatusOK {
		t.Fatalf("register: %d %s", code, b)
	}
	var sess struct {
		Name             string `json:"name"`
		Token            string `json:"token"`
		ExpiresInSeconds int    `json:"expires_in_seconds"`
	}
	if err := json.Unmarshal(b, &sess); err != nil || sess.Name != "alice" || len(sess.Token) != 43 || sess.ExpiresInSeconds != 20 {
		t.Fatalf("session %s (%v)", b, err)
	}
	code, b, _ = call(t, hc, "PUT", base+"/v1/users/alice/presence", body, nil)
	if code != http.StatusUnauthorized || errCode(t, b) != "challenge_invalid" {
		t.Fatalf("replay: %d %s", code, b)
	}
	// The same signed body under another name is refused too.
	other := signedBody(t, hc, base, domain.ActionRegister, "alice", alice, domain.Endpoints{})
	code, b, _ = call(t, hc, "PUT", base+"/v1/users/alicia/presence", other, nil)
	if code != http.StatusUnauthorized || errCode(t, b) != "bad_signature" {
		t.Fatalf("moved to another name: %d %s", code, b)
	}
	code, _, _ = call(t, hc, "POST", base+"/v1/users/alice/presence/heartbeat", nil, map[string]string{"Authorization": "Bearer " + sess.Token})
	if code != http.StatusNoContent {
		t.Fatalf("heartbeat: %d", code)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	hc, base := rawClient(ts)
	alice := newLocal(t, "alice")
	valid := signedBody(t, hc, base, domain.ActionRegister, "alice", alice, domain.Endpoints{})
	huge := append([]byte(`{"key":"`), bytes.Repeat([]byte("A"), 100<<10)...)
	huge = append(huge, `"}`...)
	tests := []struct {
		name, method, path string
		body               []byte
		status             int
		code               string
	}{
		{"malformed JSON", "PUT", "/v1/users/alice/presence", []byte(`{"key":`), 400, "malformed_json"},
		{"not an object", "PUT", "/v1/users/alice/presence", []byte(`[1,2]`), 400, "malformed_json"},
		{"two values", "PUT", "/v1/users/alice/presence", append(append([]byte{}, valid...), valid...), 400, "malformed_json"},
		{"oversized", "PUT", "/v1/users/alice/presence", huge, 413, "too_large"},
		{"bad base64", "PUT", "/v1/users/alice/presence", []byte(`{"key":"***","challenge":"","signature":""}`), 400, "invalid_request"},
		{"endpoint with a newline", "PUT", "/v1/users/alice/presence",
			signedBody(t, hc, base, domain.ActionRegister, "alice", alice, domain.Endpoints{Link: []string{"10.0.0.1:7000\nlevel=INFO msg=forged"}}), 400, "invalid_request"},
		{"endpoint without a port", "PUT", "/v1/users/alice/presence",
			signedBody(t, hc, base, domain.ActionRegister, "alice", alice, domain.Endpoints{File: []string{"10.0.0.1"}}), 400, "invalid_request"},
		{"short key", "PUT", "/v1/users/alice/presence", []byte(`{"key":"AAAA","challenge":"","signature":""}`), 400, "invalid_key"},
		{"invalid name", "PUT", "/v1/users/a%20b/presence", valid, 400, "invalid_name"},
		{"name too long", "GET", "/v1/users/" + strings.Repeat("a", 40), nil, 400, "invalid_name"},
		{"unknown user", "GET", "/v1/users/nobody", nil, 404, "unknown_user"},
		{"unknown route", "GET", "/v2/nothing", nil, 404, "not_found"},
		{"wrong method", "GET", "/v1/challenges", nil, 405, "method_not_allowed"},
		{"no session", "POST", "/v1/users/alice/presence/heartbeat", nil, 401, "session_invalid"},
		{"stream with bad session", "GET", "/v1/events?name=alice", nil, 401, "session_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if strings.HasPrefix(tt.path, "/v1/events") {
				hdr["Authorization"] = "Bearer nope"
			}
			code, b, _ := call(t, hc, tt.method, base+tt.path, tt.body, hdr)
			if code != tt.status || errCode(t, b) != tt.code {
				t.Fatalf("%d %s, want %d %s", code, b, tt.status, tt.code)
			}
		})
	}
	// The valid body still works after all that.
	if code, b, _ := call(t, hc, "PUT", base+"/v1/users/alice/presence", valid, nil); code != 200 {
		t.Fatalf("valid register: %d %s", code, b)
	}
	code, b, _ := call(t, hc, "GET", base+"/healthz", nil, nil)
	if code != 200 || !strings.Contains(string(b), `"ok"`) {
		t.Fatalf("healthz %d %s", code, b)
	}
	code, b, _ = call(t, hc, "GET", base+"/metrics", nil, nil)
	for _, want := range []string{
		"chatx_registry_registered_users 1\n",
		"chatx_registry_online_users 1\n",
		"chatx_registry_stream_subscribers 0\n",
		`chatx_registry_requests_total{code="413",route="PUT /v1/users/{name}/presence"} 1`,
	} {
		if code != 200 || !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	cfg := fastConfig(t.TempDir(), "")
	cfg.ChallengeRate = registry.Rate{PerSecond: 0.01, Burst: 3}
	ts := startServer(t, cfg, app.RegistryOptions{})
	hc, base := rawClient(ts)
	for i := range 3 {
		if code, b, _ := call(t, hc, "POST", base+"/v1/challenges", nil, nil); code != 201 {
			t.Fatalf("challenge %d: %d %s", i, code, b)
		}
	}
	code, b, h := call(t, hc, "POST", base+"/v1/challenges", nil, nil)
	if code != http.StatusTooManyRequests || errCode(t, b) != "rate_limited" || h.Get("Retry-After") == "" {
		t.Fatalf("4th challenge: %d %s retry-after %q", code, b, h.Get("Retry-After"))
	}
}

// Slow clients that never finish their headers must not keep others out,
// and are cut off after ReadHeaderTimeout.
func TestSlowlorisDoesNotStarve(t *testing.T) {
	t.Parallel()
	cfg := fastConfig(t.TempDir(), "")
	cfg.ReadHeaderTimeout = time.Second
	cfg.MaxConns = 100
	ts := startServer(t, cfg, app.RegistryOptions{})
	const slow = 60
	var conns []*tls.Conn
	for range slow {
		// On a loaded machine the first slow connections may already be cut
		// (ReadHeaderTimeout) while the last are dialled; that is the server
		// defending itself, so only a majority of them must get in.
		c, err := tls.Dial("tcp", ts.srv.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Logf("slow connection refused: %v", err)
			continue
		}
		if _, err := c.Write([]byte("GET /v1/online HTTP/1.1\r\nHost: x\r\nX-Slow: ")); err != nil {
			t.Logf("slow connection cut: %v", err)
			c.Close()
			continue
		}
		conns = append(conns, c)
	}
	if len(conns) < slow/2 {
		t.Fatalf("only %d of %d slow connections were made: the test proves nothing", len(conns), slow)
	}
	cl := newClient(t, ts.url, "")
	for i := range 20 {
		if _, err := cl.Online(t.Context()); err != nil {
			t.Fatalf("request %d beside slow clients: %v", i, err)
		}
	}
	// Every slow connection is closed by the server.
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow connection %d still open", i)
		}
		c.Close()
	}
}

func TestCertificatePinning(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	addr := ts.srv.Addr().String()

	wrong := registry.RegistryURL("https://" + addr + "/#sha256=" + strings.Repeat("ab", 32))
	_, err := newClient(t, wrong, "").Online(t.Context())
	var changed *registry.CertChangedError
	if !errors.As(err, &changed) {
		t.Fatalf("wrong pin: %v", err)
	}

	// Trust on first use, then refuse a different certificate on the same address.
	profile := t.TempDir()
	tofu := registry.RegistryURL("https://" + addr)
	if _, err := newClient(t, tofu, profile).Online(t.Context()); err != nil {
		t.Fatal(err)
	}
	pins, err := os.ReadFile(filepath.Join(profile, registry.KnownHostsFile))
	if err != nil || !strings.Contains(string(pins), ts.srv.CertFingerprint()) {
		t.Fatalf("pin file %q %v", pins, err)
	}
	ts.stop()
	impostor := startServer(t, fastConfig(t.TempDir(), addr), app.RegistryOptions{})
	_, err = newClient(t, tofu, profile).Online(t.Context())
	if !errors.As(err, &changed) || changed.Got != impostor.srv.CertFingerprint() {
		t.Fatalf("changed certificate accepted: %v", err)
	}
	if !strings.Contains(err.Error(), "MISMATCH") {
		t.Fatalf("error is not loud: %v", err)
	}
	if _, _, err := registry.NewClient(registry.ClientConfig{URL: "http://" + registry.RegistryURL(addr)}, nil); err == nil {
		t.Fatal("plain http URL accepted")
	}
}

func TestAccountsSurviveTornLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, cleanup, err := registry.NewFileAccountStore(registry.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	alice := newLocal(t, "alice")
	if err := s.Bind(t.Context(), alice.Identity, time.Now()); err != nil {
		t.Fatal(err)
	}
	cleanup()
	f, err := os.OpenFile(filepath.Join(dir, "accounts.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"name":"bob","key":"AAA`) // torn write
	f.Close()
	s, cleanup, err = registry.NewFileAccountStore(registry.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	got, err := s.Get(t.Context(), domain.MustUsername("ALICE"))
	if err != nil || !got.SameKey(alice.PublicKey()) {
		t.Fatalf("alice after reopen: %v %v", got, err)
	}
	if err := s.Bind(t.Context(), newLocal(t, "аlice").Identity, time.Now()); !errors.Is(err, domain.ErrNameTaken) {
		t.Fatalf("look-alike bind: %v", err)
	}
	bob := newLocal(t, "bob")
	if err := s.Bind(t.Context(), bob.Identity, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(t.Context()); n != 2 {
		t.Fatalf("count %d", n)
	}
}

// clientCount is 200 by default and 1,000 with CHATX_LONG=1.
func clientCount() int {
	if os.Getenv("CHATX_LONG") != "" {
		if n, err := strconv.Atoi(os.Getenv("CHATX_LONG")); err == nil && n > 1 {
			return n
		}
		return 1000
	}
	return 200
}

func TestManyClientsRegisterAndWatch(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	n := clientCount()
	ctx := t.Context()
	observer := newClient(t, ts.url, "")
	events, err := observer.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan int, 1)
	go func() {
		online := map[string]bool{}
		for e := range events {
			if e.Kind == ports.PeerChanged && e.Peer.Online {
				online[e.Peer.Name().String()] = true
				if len(online) == n {
					seen <- n
					return
				}
			}
		}
	}()
	clients := make([]*registry.Client, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		clients[i] = newClient(t, ts.url, "")
		wg.Go(func() {
			if err := clients[i].Register(ctx, newLocal(t, fmt.Sprintf("user-%d", i+2000)), domain.Endpoints{}); err != nil {
				errs <- err
				return
			}
			w, err := clients[i].Watch(ctx)
			if err != nil {
				errs <- err
				return
			}
			go func() {
				for range w {
				}
			}()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case <-seen:
	case <-time.After(60 * time.Second):
		t.Fatal("observer did not see every client online")
	}
	st, err := ts.svc.Stats(ctx)
	if err != nil || st.Registered != n || st.Online != n {
		t.Fatalf("stats %+v %v", st, err)
	}
}

// TestRestartReRegisters restarts the registry on the same data dir and
// port: every client comes back online by itself, names stay bound.
func TestRestartReRegisters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ts := startServer(t, fastConfig(dir, ""), app.RegistryOptions{SessionTTL: 2 * time.Second})
	addr := ts.srv.Addr().String()
	ctx := t.Context()
	const n = 20
	ids := make([]domain.LocalIdentity, n)
	var first *registry.Client
	for i := range n {
		ids[i] = newLocal(t, fmt.Sprintf("peer-%d", i+20))
		c := newClient(t, ts.url, t.TempDir())
		if err := c.Register(ctx, ids[i], domain.Endpoints{Link: []string{"10.1.1.1:7000"}}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = c
		}
	}
	oldBinding, err := first.STUN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	watcher := newClient(t, ts.url, t.TempDir())
	events, err := watcher.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitKind := func(kind ports.DirectoryEventKind) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case e := <-events:
				if e.Kind == kind {
					return
				}
			case <-timeout:
				t.Fatalf("no directory event of kind %d", kind)
			}
		}
	}
	waitKind(ports.Connected)
	ts.stop()
	waitKind(ports.Disconnected)
	ts2 := startServer(t, fastConfig(dir, addr), app.RegistryOptions{SessionTTL: 2 * time.Second})
	if ts2.srv.CertFingerprint() != ts.srv.CertFingerprint() {
		t.Fatal("certificate changed across restart")
	}
	waitKind(ports.Connected)
	waitKind(ports.Resync)
	waitFor(t, 30*time.Second, "every client online again", func() bool {
		st, err := ts2.svc.Stats(ctx)
		return err == nil && st.Online == n
	})
	for _, id := range ids {
		p, err := ts2.svc.Lookup(ctx, id.Name())
		if err != nil || !p.Identity.SameKey(id.PublicKey()) {
			t.Fatalf("%s after restart: %+v %v", id.Name(), p, err)
		}
	}
	// The re-registered session has a new STUN binding, which the new
	// server accepts. (The server counts a client online before the
	// client has read the answer to its registration: wait for it.)
	var b ports.STUNBinding
	waitFor(t, 30*time.Second, "the first client's new STUN binding", func() bool {
		b, err = first.STUN(ctx)
		return err == nil && b.Username != oldBinding.Username
	})
	c := stunSocket(t)
	req := bindingRequest(t, b.Username, b.Key)
	if ans := exchange(t, c, ts2.srv.STUNPorts()[0], req); stun.NewShortTermIntegrity(string(b.Key)).Check(ans) != nil {
		t.Fatal("the new server does not answer the new binding")
	}
	thief := newLocal(t, "peer-20")
	if err := newClient(t, ts2.url, "").Register(ctx, thief, domain.Endpoints{}); !errors.Is(err, domain.ErrNameTaken) {
		t.Fatalf("name taken over after restart: %v", err)
	}
}

// TestHelperClientProcess is the client process of TestKilledClientGoesOffline.
func TestHelperClientProcess(t *testing.T) {
	if os.Getenv("CHATX_REGISTRY_HELPER") == "" {
		t.Skip("helper process only")
	}
	c, _, err := registry.NewClient(registry.ClientConfig{URL: registry.RegistryURL(os.Getenv("CHATX_REGISTRY_URL"))}, nil)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	if err := c.Register(context.Background(), newLocal(t, "victim"), domain.Endpoints{}); err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	fmt.Println("READY")
	select {}
}

func TestKilledClientGoesOffline(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	ctx := t.Context()
	watcher := newClient(t, ts.url, "")
	events, err := watcher.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperClientProcess$")
	cmd.Env = append(os.Environ(), "CHATX_REGISTRY_HELPER=1", "CHATX_REGISTRY_URL="+string(ts.url))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "READY" {
		t.Fatalf("helper: %q %v", line, err)
	}
	waitPresence(t, events, "victim", true, 10*time.Second)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitPresence(t, events, "victim", false, 30*time.Second)
	t.Logf("killed client shown offline after %v", time.Since(killed).Round(time.Millisecond))
}

// A silent client (no stream, no heartbeat) expires within TTL + reap interval.
func TestSilentSessionExpires(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{SessionTTL: time.Second})
	hc, base := rawClient(ts)
	alice := newLocal(t, "alice")
	code, b, _ := call(t, hc, "PUT", base+"/v1/users/alice/presence", signedBody(t, hc, base, domain.ActionRegister, "alice", alice, domain.Endpoints{}), nil)
	if code != 200 {
		t.Fatalf("register %d %s", code, b)
	}
	if !isOnline(t.Context(), ts.svc, "alice") {
		t.Fatal("not online after register")
	}
	waitFor(t, 10*time.Second, "silent alice offline", func() bool { return !isOnline(t.Context(), ts.svc, "alice") })
}

// A client that reconnects its stream before the server noticed the old one
// die must not be logged out when the old stream finally closes.
func TestOlderStreamDoesNotEndNewerSession(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	hc, base := rawClient(ts)
	alice := newLocal(t, "alice")
	code, b, _ := call(t, hc, "PUT", base+"/v1/users/alice/presence", signedBody(t, hc, base, domain.ActionRegister, "alice", alice, domain.Endpoints{}), nil)
	if code != 200 {
		t.Fatalf("register %d %s", code, b)
	}
	var sess struct{ Token string }
	if err := json.Unmarshal(b, &sess); err != nil {
		t.Fatal(err)
	}
	open := func() (context.CancelFunc, *bufio.Reader, io.Closer) {
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events?name=alice", nil)
		req.Header.Set("Authorization", "Bearer "+sess.Token)
		resp, err := hc.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream: %v %v", resp, err)
		}
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, "event: synced") {
				return cancel, r, resp.Body
			}
		}
	}
	cancelOld, oldR, oldBody := open()
	defer cancelOld()
	defer oldBody.Close()
	cancelNew, _, newBody := open()
	// One live stream per session: the newer one ends the older, and the
	// older one ending does not log the session out.
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, oldR)
		ended <- err
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the older stream of the session was not ended by the newer one")
	}
	waitFor(t, 10*time.Second, "one stream left", func() bool { return ts.srv.Streams() == 1 })
	if !isOnline(t.Context(), ts.svc, "alice") {
		t.Fatal("the older stream closing logged the newer session out")
	}
	cancelNew()
	newBody.Close()
	waitFor(t, 10*time.Second, "alice offline after her last stream", func() bool { return !isOnline(t.Context(), ts.svc, "alice") })
}

func TestAccountStoreConcurrentBinds(t *testing.T) {
	t.Parallel()
	dir := registry.DataDir(t.TempDir())
	s, cleanup, err := registry.NewFileAccountStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	var won, taken, other atomic.Int64
	for i := range n {
		wg.Go(func() {
			// Everyone races for "carol" (and look-alikes) with their own key…
			switch err := s.Bind(t.Context(), newLocal(t, []string{"carol", "CAROL", "сarol"}[i%3]).Identity, time.Now()); {
			case err == nil:
				won.Add(1)
			case errors.Is(err, domain.ErrNameTaken):
				taken.Add(1)
			default:
				other.Add(1)
			}
			// …and binds a name of their own.
			if err := s.Bind(t.Context(), newLocal(t, fmt.Sprintf("own-%d", i+10)).Identity, time.Now()); err != nil {
				other.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 || taken.Load() != n-1 || other.Load() != 0 {
		t.Fatalf("won %d, taken %d, other errors %d", won.Load(), taken.Load(), other.Load())
	}
	cleanup()
	s, cleanup, err = registry.NewFileAccountStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if c, _ := s.Count(t.Context()); c != n+1 {
		t.Fatalf("%d accounts after reopen, want %d", c, n+1)
	}
}

// The client waits out a rate limit (Retry-After) instead of failing.
func TestClientWaitsOutRateLimit(t *testing.T) {
	t.Parallel()
	cfg := fastConfig(t.TempDir(), "")
	cfg.RegisterRate = registry.Rate{PerSecond: 2, Burst: 1}
	ts := startServer(t, cfg, app.RegistryOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, name := range []string{"first", "second", "third"} {
		if err := newClient(t, ts.url, "").Register(ctx, newLocal(t, name), domain.Endpoints{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	hc, base := rawClient(ts)
	_, b, _ := call(t, hc, "GET", base+"/metrics", nil, nil)
	if !strings.Contains(string(b), `code="429",route="PUT /v1/users/{name}/presence"`) {
		t.Fatalf("no registration was rate-limited, the test proves nothing:\n%s", b)
	}
}
