package registry_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
)

const shedChildEnv = "CHATX_SHED_CHILD"

// TestShedUnderDescriptorPressure runs a registry in a child process
// limited to 64 file descriptors (RLIMIT_NOFILE) and opens 200 keep-alive
// connections to it at once, each asking for a challenge (new work).
// Every request is answered — a challenge, or at once 503 busy with a
// Retry-After — none times out; /healthz answers all 10 checks during the
// pressure; /metrics shows it and the log says so; once the connections
// close, the node serves registrations again.
func TestShedUnderDescriptorPressure(t *testing.T) {
	if os.Getenv(shedChildEnv) != "" {
		shedChild(t)
		return
	}
	child := exec.Command(os.Args[0], "-test.run=^TestShedUnderDescriptorPressure$", "-test.v")
	child.Env = append(os.Environ(), shedChildEnv+"=1")
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	var logs strings.Builder
	var logMu sync.Mutex
	child.Stderr = writerFunc(func(b []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(b) })
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = child.Wait() })
	sc := bufio.NewScanner(stdout)
	var url string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatalf("child registry did not start")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	base := strings.SplitN(url, "/#", 2)[0]

	client := func() *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 1, DisableCompression: true}}
	}
	const n = 200
	held := make([]*http.Client, n)
	type result struct {
		status int
		retry  string
		err    error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		held[i] = client()
		wg.Go(func() {
			resp, err := held[i].Post(base+"/v1/challenges", "application/json", nil)
			if err != nil {
				results[i] = result{err: err}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results[i] = result{status: resp.StatusCode, retry: resp.Header.Get("Retry-After")}
		})
	}
	wg.Wait()
	ok, shed := 0, 0
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("request %d: %v (want an answer, not a timeout or reset)", i, r.err)
		case r.status == http.StatusCreated:
			ok++
		case r.status == http.StatusServiceUnavailable && r.retry != "":
			shed++
		default:
			t.Errorf("request %d: status %d Retry-After %q", i, r.status, r.retry)
		}
	}
	t.Logf("%d challenges issued, %d refused early with 503", ok, shed)
	if shed == 0 || ok == 0 {
		t.Fatalf("%d served, %d shed: want both under a 64-descriptor limit", ok, shed)
	}
	for i := range 10 {
		resp, err := client().Get(base + "/healthz")
		if err != nil {
			t.Fatalf("health check %d under pressure: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("health check %d: %d", i, resp.StatusCode)
		}
	}
	metrics := get(t, client(), base+"/metrics")
	for _, want := range []string{"chatx_registry_shedding 1", "chatx_registry_fd_limit 64", "chatx_registry_shed_requests_total " + strconv.Itoa(shed)} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	logMu.Lock()
	said := strings.Contains(logs.String(), "under pressure")
	logMu.Unlock()
	if !said {
		t.Errorf("the log does not say the node is under pressure")
	}
	// Pressure gone: the held connections close; the node registers again.
	for _, c := range held {
		c.CloseIdleConnections()
	}
	c := newClient(t, registry.RegistryURL(url), "")
	if err := c.Register(t.Context(), newLocal(t, "after"), domain.Endpoints{}); err != nil {
		t.Fatalf("register once the pressure is gone: %v", err)
	}
	if m := get(t, client(), base+"/metrics"); !strings.Contains(m, "chatx_registry_shedding 0") {
		t.Errorf("still shedding after the pressure is gone")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// shedChild is the registry of TestShedUnderDescriptorPressure: 64
// descriptors, served until stdin closes.
func shedChild(t *testing.T) {
	lim := syscall.Rlimit{Cur: 64, Max: 64}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig(t.TempDir(), "")
	cfg.NoSTUN = true
	cfg.Listen = "127.0.0.1:0"
	// On a loaded machine a TLS handshake can outlast the default 5 s;
	// what is tested here is shedding, not that deadline.
	cfg.ReadHeaderTimeout = 60 * time.Second
	accounts, closeAccounts, err := registry.NewFileAccountStore(cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAccounts()
	svc, err := app.NewRegistry(accounts, registry.NewPresenceStore(), memory.NewRealClock(), app.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, cleanup, err := registry.NewServer(cfg, svc, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	go func() { _ = srv.Serve(t.Context()) }()
	fmt.Printf("URL %s\n", srv.URL())
	_, _ = io.Copy(io.Discard, os.Stdin)
}
