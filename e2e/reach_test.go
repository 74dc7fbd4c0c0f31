package e2e_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatx/chatx/e2e/internal/netlab"
)

var (
	reachBench = flag.Bool("reach.bench", false, "TestReachability: run the cases one at a time with bigger files and print time to first message and throughput per case (make bench-reach)")
	reachSize  = flag.Int("reach.size", 0, "TestReachability: file size in bytes (default 2 MiB, 64 MiB with -reach.bench)")
)

// reachCase is one row of the reachability matrix: alice and bob on hosts
// of a fresh lab; alice sends first.
type reachCase struct {
	name string
	// want is the path the peers must end up on: "lan", "direct" (at least
	// one side's NAT maps independently of the endpoint) or "relayed".
	want string
	// coturn: the registry hands out credentials for an external coturn
	// (`--turn`, `--turn-secret-file`) instead of its embedded relay.
	coturn bool
	hosts  func(*netlab.Lab) (alice, bob *netlab.Host)
}

func home(nat netlab.NAT) netlab.HomeOptions { return netlab.HomeOptions{NAT: nat} }

func homeHost(l *netlab.Lab, name string, o netlab.HomeOptions) *netlab.Host {
	return l.Home(name, o).Host(name)
}

var reachCases = []reachCase{
	{name: "same LAN", want: "lan", hosts: func(l *netlab.Lab) (*netlab.Host, *netlab.Host) {
		h := l.Home("home", home(netlab.Cone))
		return h.Host("alice"), h.Host("bob")
	}},
	{name: "public to public", want: "direct", hosts: func(l *netlab.Lab) (*netlab.Host, *netlab.Host) {
		return l.Public("alice"), l.Public("bob")
	}},
	{name: "NAT to public", want: "direct", hosts: func(l *netlab.Lab) (*netlab.Host, *netlab.Host) {
		return homeHost(l, "alice", home(netlab.Cone)), l.Public("bob")
	}},
	{name: "public to NAT", want: "direct", hosts: func(l *netlab.Lab) (*netlab.Host, *netlab.Host) {
		return l.Public("alice"), homeHost(l, "bob", home(netlab.Cone))
	}},
	{name: "cone to cone", want: "direct", hosts: func(l *netlab.Lab) (*netlab.Host, *netlab.Host) {
		return homeHost(l, "alice", home(netlab.Cone)), homeHost(l, "bob", home(netlab.Cone))
	}},
	{name: "symmetric to cone", want: "direct", hosts: func(l *netlab.Lab) (*netlab.Host, *netlab.Host) {
		return homeHost(l, "alice", home(netlab.Symmetric)), homeHost(l, "bob", home(netlab.Cone))
	}},
	{name: "symmetric to symmetric", want: "relayed", hosts: func(l *netlab.Lab) (*netlab.Host, *netlab.Host) {
		return homeHost(l, "alice", home(netlab.Symmetric)), homeHost(l, "bob", home(netlab.Symmetric))
	}},
	{name: "cone to cone, 5% UDP loss", want: "direct", hosts: func(l *netlab.Lab) (*netlab.Host, *netlab.Host) {
		return homeHost(l, "alice", netlab.HomeOptions{NAT: netlab.Cone, UDPLossPercent: 5}), homeHost(l, "bob", home(netlab.Cone))
	}},
	{name: "UDP blocked to cone", want: "relayed", hosts: func(l *netlab.Lab) (*netlab.Host, *netlab.Host) {
		return homeHost(l, "alice", netlab.HomeOptions{NAT: netlab.Cone, BlockUDP: true}), homeHost(l, "bob", home(netlab.Cone))
	}},
	{name: "symmetric to symmetric, coturn", want: "relayed", coturn: true, hosts: func(l *netlab.Lab) (*netlab.Host, *netlab.Host) {
		return homeHost(l, "alice", home(netlab.Symmetric)), homeHost(l, "bob", home(netlab.Symmetric))
	}},
	{name: "UDP blocked to cone, coturn", want: "relayed", coturn: true, hosts: func(l *netlab.Lab) (*netlab.Host, *netlab.Host) {
		return homeHost(l, "alice", netlab.HomeOptions{NAT: netlab.Cone, BlockUDP: true}), homeHost(l, "bob", home(netlab.Cone))
	}},
}

// reachResult is what one case measured, for the table.
type reachResult struct {
	name, want, path, transport string
	firstMessage                time.Duration
	fileSize                    int
	fileThere, fileBack         time.Duration // 0: failed or not tried
}

// TestReachability runs the matrix of issue 9 on a network-namespace model
// of the internet (e2e/internal/netlab): a registry on a public address,
// peers on public addresses, on one LAN, or behind home routers with cone or
// symmetric NAT, lossy UDP or no UDP at all. Each case chats both ways,
// sends a file both ways (byte-identical by SHA-256) and checks the path the
// peers report. Root, ip and nft are needed; otherwise it skips.
func TestReachability(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Skipf("network namespace tests skipped: %v", err)
	}
	size := *reachSize
	if size == 0 {
		size = 2 << 20
		if *reachBench {
			size = 64 << 20
		}
	}
	var (
		mu      sync.Mutex
		results []reachResult
	)
	t.Cleanup(func() {
		sort.Slice(results, func(i, j int) bool { return caseIndex(results[i].name) < caseIndex(results[j].name) })
		t.Log("\n" + reachTable(results))
	})
	for _, c := range reachCases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			if c.coturn {
				if _, err := exec.LookPath("turnserver"); err != nil {
					t.Skip("coturn (turnserver) not installed: apt-get install coturn")
				}
			}
			if !*reachBench {
				t.Parallel()
			}
			r := runReachCase(t, c, size)
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		})
	}
}

func caseIndex(name string) int {
	for i, c := range reachCases {
		if c.name == name {
			return i
		}
	}
	return len(reachCases)
}

var registryIP = netip.MustParseAddr("198.51.100.2")

func runReachCase(t *testing.T, c reachCase, size int) reachResult {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	res := reachResult{name: c.name, want: c.want, path: "?", transport: "?", fileSize: size}
	lab := netlab.New(t)
	regHost := lab.Server("registry", registryIP)
	var regFlags []string
	if *reachBench {
		// Measure the relay, not the per-allocation cap a registry sets by
		// default (--relay-rate 10M, docs/relay.md).
		regFlags = append(regFlags, "--relay-rate", "0")
	}
	relayHost := regHost // where a relay runs: the registry's embedded one, or coturn
	if c.coturn {
		turnHost := lab.Server("turn", netip.MustParseAddr("198.51.100.3"))
		relayHost = turnHost
		secretFile := startCoturn(t, turnHost)
		// coturn listens on UDP and TCP 3478; TCP is the way out of a home
		// without UDP.
		turnAt := "turn:" + turnHost.IP.String() + ":3478"
		regFlags = append(regFlags, "--turn", turnAt+"?transport=udp,"+turnAt+"?transport=tcp", "--turn-secret-file", secretFile)
	}
	reg := startRegistryIn(t, regHost.Wrap(), t.TempDir(), registryIP.String()+":5000", regFlags...)
	aHost, bHost := c.hosts(lab)
	listen := []string{"--listen-tcp", "0.0.0.0:0", "--listen-udp", "0.0.0.0:0", "--auto-accept"}
	if os.Getenv("CHATX_NETNS_DEBUG") != "" {
		listen = append(listen, "-v")
	}
	aDirs, bDirs := newDirs(t, "alice"), newDirs(t, "bob")
	alice := startClientIn(t, aHost.Wrap(), "alice", reg.url, aDirs, listen...)
	bob := startClientIn(t, bHost.Wrap(), "bob", reg.url, bDirs, listen...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("registry log:\n%s\nalice (%s) log:\n%s\nbob (%s) log:\n%s",
				reg.out.String(), aHost.IP, alice.logs.String(), bHost.IP, bob.logs.String())
		}
	})
	onlineCtx, onlineCancel := context.WithTimeout(ctx, 30*time.Second)
	alice.waitOnline(onlineCtx, "bob")
	bob.waitOnline(onlineCtx, "alice")
	onlineCancel()

	// Chat: alice first (the side that dials), then bob.
	var errs []string
	there, err := chatStep(ctx, alice, bob, "hello bob")
	if err != nil {
		errs = append(errs, "chat alice → bob: "+err.Error())
	}
	res.firstMessage = there
	_, errBack := chatStep(ctx, bob, alice, "hello alice")
	if errBack != nil {
		errs = append(errs, "chat bob → alice: "+errBack.Error())
	}
	if err != nil && errBack != nil {
		errs = append(errs, "files not tried: no chat either way")
	} else {
		// What the relay's host and alice's router carry while the files
		// move tells the path apart whatever the peers report.
		relayBefore := mustCount(t, relayHost.InputBytes)
		var lanBefore uint64
		if c.want == "lan" {
			lanBefore = mustCount(t, aHost.Home.WANOutBytes)
		}
		if res.fileThere, err = fileStep(ctx, t, alice, bob, bDirs, size); err != nil {
			errs = append(errs, "file alice → bob: "+err.Error())
		}
		if res.fileBack, err = fileStep(ctx, t, bob, alice, aDirs, size); err != nil {
			errs = append(errs, "file bob → alice: "+err.Error())
		}
		files := uint64(0)
		for _, d := range []time.Duration{res.fileThere, res.fileBack} {
			if d > 0 {
				files++
			}
		}
		relayed := mustCount(t, relayHost.InputBytes) - relayBefore
		t.Logf("the relay's host received %s while %d file(s) of %s moved", formatSize(int(relayed)), files, formatSize(size))
		switch {
		case c.want == "relayed" && relayed < files*uint64(size):
			errs = append(errs, fmt.Sprintf("the relay's host received only %d bytes for %d file(s) of %d bytes: the files did not go through the relay", relayed, files, size))
		case c.want != "relayed" && files > 0 && relayed >= uint64(size):
			errs = append(errs, fmt.Sprintf("the relay's host received %d bytes while %d file(s) of %d bytes moved: a file went through it, want %s", relayed, files, size, c.want))
		}
		if c.want == "lan" && files > 0 {
			if out := mustCount(t, aHost.Home.WANOutBytes) - lanBefore; out >= uint64(size) {
				errs = append(errs, fmt.Sprintf("the home router forwarded %d bytes to the internet while the files moved: they left the LAN", out))
			}
		}
	}

	// The path, as each side reports it.
	for _, side := range []struct {
		c    *rpcClient
		peer string
	}{{alice, "bob"}, {bob, "alice"}} {
		path, transport, known := peerPath(side.c, side.peer)
		if !known {
			t.Logf("%s → %s: path unknown (the peer view has no \"path\" yet)", side.c.name, side.peer)
			continue
		}
		res.path, res.transport = path, transport
		t.Logf("%s → %s: path %s over %s", side.c.name, side.peer, path, transport)
		if path != c.want {
			errs = append(errs, fmt.Sprintf("%s reaches %s by path %q, want %q", side.c.name, side.peer, path, c.want))
		}
	}
	t.Logf("first message in %s; %s file there in %s, back in %s", took(res.firstMessage),
		formatSize(size), took(res.fileThere), took(res.fileBack))
	for _, e := range errs {
		t.Error(e)
	}
	return res
}

func mustCount(t *testing.T, read func() (uint64, error)) uint64 {
	t.Helper()
	n, err := read()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// chatStep sends text from → to and waits until to has it and from has its
// acknowledgement; it returns the time from send to arrival.
func chatStep(ctx context.Context, from, to *rpcClient, text string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var sent messageNote
	start := time.Now()
	if err := from.tryCall("send", map[string]any{"to": to.name, "text": text}, &sent); err != nil {
		return 0, err
	}
	if _, err := to.awaitNote(ctx, "message", func(p json.RawMessage) bool {
		var m messageNote
		return json.Unmarshal(p, &m) == nil && m.ID == sent.ID && m.Text == text
	}); err != nil {
		return 0, fmt.Errorf("%w (message state: %s)", err, messageState(from, to.name, sent.ID))
	}
	took := time.Since(start)
	if _, err := from.awaitNote(ctx, "delivered", func(p json.RawMessage) bool {
		var d struct{ ID string }
		return json.Unmarshal(p, &d) == nil && d.ID == sent.ID
	}); err != nil {
		return took, fmt.Errorf("arrived but not acknowledged: %w", err)
	}
	return took, nil
}

func messageState(c *rpcClient, peer, id string) string {
	var history []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := c.tryCall("history", map[string]any{"with": peer, "limit": 50}, &history); err != nil {
		return err.Error()
	}
	for _, m := range history {
		if m.ID == id {
			return m.State
		}
	}
	return "not in history"
}

// fileStep sends a file of random bytes from → to and waits until both
// sides report it completed and the received copy has the same SHA-256; it
// returns the time from the offer to the receiver's completion.
func fileStep(ctx context.Context, t *testing.T, from, to *rpcClient, toDirs clientDirs, size int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	name := fmt.Sprintf("from-%s.bin", from.name)
	src := filepath.Join(t.TempDir(), name)
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		return 0, err
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		return 0, err
	}
	want := sha256.Sum256(data)
	data = nil
	start := time.Now()
	var offer transferNote
	if err := from.tryCall("sendFile", map[string]any{"to": to.name, "path": src}, &offer); err != nil {
		return 0, err
	}
	last := "offered"
	done := func(c *rpcClient) error {
		_, err := c.awaitNote(ctx, "transfer", func(p json.RawMessage) bool {
			var tr transferNote
			if json.Unmarshal(p, &tr) != nil || tr.ID != offer.ID {
				return false
			}
			last = tr.State
			return tr.State == "completed" || tr.State == "failed" || tr.State == "declined" || tr.State == "cancelled"
		})
		if err != nil {
			return fmt.Errorf("%w (last state seen: %s)", err, last)
		}
		if last != "completed" {
			return fmt.Errorf("%s: transfer %s", c.name, last)
		}
		return nil
	}
	if err := done(to); err != nil {
		return 0, err
	}
	took := time.Since(start)
	if err := done(from); err != nil {
		return 0, err
	}
	got, err := fileSHA256(filepath.Join(toDirs.downloads, name))
	if err != nil {
		return 0, fmt.Errorf("received file: %w", err)
	}
	if got != want {
		return 0, fmt.Errorf("received file differs: sha256 %x, want %x", got, want)
	}
	return took, nil
}

func fileSHA256(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// peerPath reads the path and transport c's peer view shows for peer;
// known is false while the peer view has no "path" field.
func peerPath(c *rpcClient, peer string) (path, transport string, known bool) {
	var peers []map[string]json.RawMessage
	if err := c.tryCall("listPeers", map[string]any{}, &peers); err != nil {
		return "", "", false
	}
	for _, p := range peers {
		var name string
		if json.Unmarshal(p["name"], &name) != nil || name != peer {
			continue
		}
		raw, ok := p["path"]
		if !ok {
			return "", "", false
		}
		path = "null"
		_ = json.Unmarshal(raw, &path)
		_ = json.Unmarshal(p["transport"], &transport)
		return path, transport, true
	}
	return "", "", false
}

// startCoturn runs coturn (the Debian package's turnserver) on h with
// its own config, TURN REST credentials (use-auth-secret) and its own
// files, and returns the file holding the shared secret for the registry.
func startCoturn(t *testing.T, h *netlab.Host) string {
	t.Helper()
	dir := t.TempDir()
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "turn-secret")
	if err := os.WriteFile(secretFile, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "turnserver.conf")
	ip := h.IP.String()
	if err := os.WriteFile(conf, []byte(strings.Join([]string{
		"listening-ip=" + ip, "relay-ip=" + ip, "listening-port=3478",
		"use-auth-secret", "static-auth-secret=" + hex.EncodeToString(secret), "realm=chatx.test",
		"no-cli", "no-tls", "no-dtls", "no-rfc5780", "fingerprint",
		"userdb=" + filepath.Join(dir, "turndb"), "pidfile=" + filepath.Join(dir, "turnserver.pid"),
		"log-file=stdout", "simple-log", "",
	}, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := h.Command("turnserver", "-c", conf)
	pr, pw := io.Pipe()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(pw, out), out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start turnserver: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); pw.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("turnserver log:\n%s", out.String())
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Total General servers") && !seen {
				close(ready)
				seen = true
			}
		}
	}()
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("turnserver exited at start:\n%s", out.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("turnserver did not start:\n%s", out.String())
	}
	return secretFile
}

func formatSize(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// took shows a step's duration, "—" for one that failed or was not tried.
func took(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return d.Round(time.Millisecond).String()
}

func throughput(size int, d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB/s", float64(size)/(1<<20)/d.Seconds())
}

// reachTable renders the results as the Markdown table of BENCHMARKS.md.
func reachTable(results []reachResult) string {
	var b strings.Builder
	b.WriteString("| case | want | path | transport | first message | file there | file back |\n|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.name, r.want, r.path, r.transport, took(r.firstMessage),
			throughput(r.fileSize, r.fileThere), throughput(r.fileSize, r.fileBack))
	}
	if len(results) > 0 {
		fmt.Fprintf(&b, "\nfiles of %s; throughput from the offer to the receiver's completion (hash verified)", formatSize(results[0].fileSize))
	}
	return b.String()
}
