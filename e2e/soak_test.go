//go:build soak

package e2e_test

// The chaos soak (issue 16, `make soak`, RELIABILITY.md). It is behind the
// build tag "soak", so `make test` never compiles it.
//
// A registry and 4-6 `chatx jsonrpc` clients run in network namespaces with
// the NAT kinds of the reachability matrix (e2e/internal/netlab): a public
// host, cone homes (two clients share one LAN), symmetric homes (two
// symmetric peers need the relay). Each client has a driver that sends
// messages and files to the others on a seeded random schedule; a fault
// injector with its own seeded schedule kills (-9) and restarts clients and
// the registry, stops them (SIGSTOP/SIGCONT), blackholes a site, cuts a site
// from the registry, partitions two sites, drops up to 20 % of a site's UDP
// (nftables numgen) and fills a client's downloads disk (a tmpfs of its own)
// and frees it. A sampler compares every client's listPeers with what the
// soak knows of who is up and reachable. When the time is up the faults are
// healed, every process is back, the clients get a settle time, and the
// ledger (e2e/internal/ledger) compares what was asked with what the
// receivers hold: history, transfers, and the SHA-256 of the files in the
// downloads folders.
//
// Environment: SOAK (duration of traffic and faults, default 10m),
// SOAK_SEED (default: from the clock; printed), SOAK_CLIENTS (4-6, default
// 6), SOAK_SETTLE (longest settle, default 3m), SOAK_DIR (where logs stay;
// default a new directory under $TMPDIR, printed).
//
// Clock jumps are not injected: CLOCK_REALTIME is one for the whole machine
// (Linux time namespaces offset only the monotonic and boot clocks, and only
// before the first process enters them), so jumping it for one client
// would jump it for every process on the machine.
//
// Extending it: a new thing the drivers do is one more entry in
// driverActions (e.g. accept message requests once contacts land, post to a
// group); a new fault is one more entry in faultKinds; a registry of several
// nodes is more entries in soak.registries' place.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatx/chatx/e2e/internal/ledger"
	"github.com/chatx/chatx/e2e/internal/netlab"
	"golang.org/x/sys/unix"
)

const (
	// presenceBound is how long a client may show a peer in the wrong
	// state after the truth changed: the registry's session TTL (20 s) plus
	// its sweep (5 s) for going offline; the reconnect backoff's cap (30 s)
	// plus a heartbeat for coming back (docs/registry-api.md).
	presenceBound = 45 * time.Second
	// lanOfflineBound is the same for two clients on one LAN, which also
	// see each other by multicast: a peer not heard for 90 s is offline
	// (docs/lan-discovery.md).
	lanOfflineBound = 100 * time.Second
	sampleEvery     = 5 * time.Second
	// maxPerConversation keeps every pair's history under the 1000 that
	// one `history` call returns.
	maxPerConversation = 450
	diskSize           = "512m"
)

// site is where a client's packets leave: a home router or a public host.
// Network faults apply to a site.
type site struct {
	name   string
	ns     string // where the fault rules go
	dev    string // the device to the internet in ns
	router bool   // ns forwards for a LAN (rules in forward), else a host (rules in input)
	addr   netip.Addr
	// fault state, under soak.mu
	blackholed, cutRegistry bool
	partitioned             map[*site]bool
	lossPercent             int
	busy                    bool
}

// node is one logical process across restarts: the registry or a client.
type node struct {
	name, kind string
	registry   bool
	host       *netlab.Host
	site       *site
	dirs       clientDirs
	disk       string // the tmpfs the downloads folder is on
	src        string // files the driver sends
	logPath    string
	seq        map[string]int // next message number per peer (driver-owned)
	mu         sync.Mutex     // files
	files      int

	// under soak.mu
	cur      *proc
	up       bool // a process runs (perhaps stopped)
	stopped  bool
	expected bool // the current process is being ended on purpose
	diskFull bool
	procBusy bool
	netBusy  bool
	stats    ledger.Process
	changed  time.Time // last change of up/stopped (presence truth)
}

type proc struct {
	cmd    *exec.Cmd
	pid    int
	rpc    *rpcClient // nil for the registry
	exited chan struct{}
}

type soak struct {
	t        *testing.T
	seed     uint64
	dir      string
	lab      *netlab.Lab
	led      *ledger.Ledger
	regURL   string
	regData  string
	reg      *node
	clients  []*node
	started  time.Time
	mu       sync.Mutex
	presence map[string]*ledger.Presence
	pairs    map[[2]string]*pairView
	events   *os.File
	faultsOn bool
	faults   map[string]int
	refusals map[string]int
	// slowStops are processes that did not end within 20 s of being asked
	// to at the end (stdin closed, SIGTERM): reported, not failed.
	slowStops []string
}

type pairView struct {
	expect    int // -1 unknown, 0 offline, 1 online
	since     time.Time
	lastRight time.Time
	counted   bool
}

func soakEnv(t *testing.T) (dur time.Duration, seed uint64, clients int, settle time.Duration) {
	dur, settle, clients = 10*time.Minute, 3*time.Minute, 6
	var err error
	if v := os.Getenv("SOAK"); v != "" {
		if dur, err = time.ParseDuration(v); err != nil {
			t.Fatalf("SOAK=%q: %v", v, err)
		}
	}
	if v := os.Getenv("SOAK_SETTLE"); v != "" {
		if settle, err = time.ParseDuration(v); err != nil {
			t.Fatalf("SOAK_SETTLE=%q: %v", v, err)
		}
	}
	seed = uint64(time.Now().UnixNano() % 1_000_000_000)
	if v := os.Getenv("SOAK_SEED"); v != "" {
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", v, err)
		}
	}
	if v := os.Getenv("SOAK_CLIENTS"); v != "" {
		if clients, err = strconv.Atoi(v); err != nil || clients < 4 || clients > 6 {
			t.Fatalf("SOAK_CLIENTS=%q: want 4 to 6", v)
		}
	}
	return dur, seed, clients, settle
}

// TestSoak is `make soak`.
func TestSoak(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Skipf("soak needs network namespaces: %v", err)
	}
	dur, seed, nClients, settle := soakEnv(t)
	fmt.Printf("soak: seed %d, %s of traffic and faults, %d clients, settle up to %s (replay: make soak SOAK=%s SOAK_SEED=%d)\n",
		seed, dur, nClients, settle, dur, seed)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		select {
		case sig := <-sigs:
			fmt.Printf("soak: %v: stopping, cleaning up\n", sig)
			cancel()
		case <-ctx.Done():
		}
	}()

	s := newSoak(t, seed, nClients)
	s.startAll(ctx)
	s.started = time.Now()
	fmt.Printf("soak: lab up, logs in %s\n", s.dir)

	trafficCtx, stopTraffic := context.WithTimeout(ctx, dur)
	defer stopTraffic()
	var wg sync.WaitGroup
	for i, n := range s.clients {
		wg.Add(1)
		go func() { defer wg.Done(); s.drive(trafficCtx, n, rand.New(rand.NewPCG(seed, uint64(i+1)))) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.inject(trafficCtx, rand.New(rand.NewPCG(seed, 1000))) }()
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() { defer close(sampled); s.sample(sampleCtx) }()

	<-trafficCtx.Done()
	wg.Wait()
	s.logEvent("traffic and faults stop; healing")
	s.healAll(ctx)
	settled := s.settle(ctx, settle)
	stopSampling()
	<-sampled
	obs := s.observe(ctx)
	s.stopAll()
	rep := s.led.Compare(obs)
	if m, f := s.led.Counts(); m == 0 || f == 0 {
		t.Errorf("the drivers got %d messages and %d files accepted: the soak tested nothing", m, f)
	}
	s.report(rep, dur, settled, ctx.Err() != nil)
}

func newSoak(t *testing.T, seed uint64, nClients int) *soak {
	dir := os.Getenv("SOAK_DIR")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", fmt.Sprintf("chatx-soak-%d-", seed)); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &soak{t: t, seed: seed, dir: dir, lab: netlab.NewNamed(t, "soak"), led: ledger.New(),
		presence: map[string]*ledger.Presence{}, pairs: map[[2]string]*pairView{}, faults: map[string]int{}, refusals: map[string]int{}}
	ev, err := os.Create(filepath.Join(dir, "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.events = ev
	t.Cleanup(func() { ev.Close() })

	regHost := s.lab.Server("registry", registryIP)
	s.regData = filepath.Join(dir, "registry-data")
	s.reg = &node{name: "registry", kind: "registry", registry: true, host: regHost,
		site: &site{name: "registry", ns: regHost.NS, dev: "eth0", addr: regHost.IP}, logPath: filepath.Join(dir, "registry.log")}
	s.reg.stats = ledger.Process{Name: "registry", Kind: "registry"}

	// The NAT kinds of the reachability matrix, in the order clients are
	// taken: 4 clients give public, cone, symmetric, symmetric; 6 add a
	// LAN of two behind one cone router.
	type place struct{ name, kind string }
	places := []place{{"ann", "public"}, {"bea", "cone NAT"}, {"eve", "symmetric NAT"}, {"fay", "symmetric NAT"}, {"cal", "cone NAT, LAN with dan"}, {"dan", "cone NAT, LAN with cal"}}
	var lanHome *netlab.Home
	var lanSite *site
	for _, p := range places[:nClients] {
		n := &node{name: p.name, kind: p.kind, seq: map[string]int{}}
		switch {
		case p.kind == "public":
			n.host = s.lab.Public(p.name)
			n.site = &site{name: p.name, ns: n.host.NS, dev: "eth0", addr: n.host.IP}
		case strings.HasPrefix(p.kind, "cone NAT, LAN"):
			if lanHome == nil {
				lanHome = s.lab.Home("lan", netlab.HomeOptions{NAT: netlab.Cone})
				lanSite = &site{name: "lan", ns: lanHome.Router, dev: "wan", router: true, addr: lanHome.WAN}
			}
			n.host = lanHome.Host(p.name)
			n.site = lanSite
		default:
			nat := netlab.Cone
			if strings.HasPrefix(p.kind, "symmetric") {
				nat = netlab.Symmetric
			}
			h := s.lab.Home(p.name, netlab.HomeOptions{NAT: nat})
			n.host = h.Host(p.name)
			n.site = &site{name: p.name + "-home", ns: h.Router, dev: "wan", router: true, addr: h.WAN}
		}
		base := filepath.Join(dir, p.name)
		n.disk = filepath.Join(base, "disk")
		n.src = filepath.Join(base, "outbox")
		n.dirs = clientDirs{profile: filepath.Join(base, "profile"), downloads: filepath.Join(n.disk, "downloads")}
		n.logPath = filepath.Join(base, "client.log")
		for _, d := range []string{n.disk, n.src} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+diskSize, "soak-"+p.name, n.disk).CombinedOutput(); err != nil {
			t.Fatalf("mount a tmpfs for %s's downloads: %v: %s", p.name, err, out)
		}
		disk := n.disk
		t.Cleanup(func() { _ = exec.Command("umount", "-l", disk).Run() })
		if err := os.MkdirAll(n.dirs.downloads, 0o755); err != nil {
			t.Fatal(err)
		}
		n.stats = ledger.Process{Name: p.name, Kind: p.kind}
		s.clients = append(s.clients, n)
	}
	t.Cleanup(s.killAll)
	return s
}

func (s *soak) logEvent(format string, args ...any) {
	line := fmt.Sprintf("%8.1fs "+format+"\n", append([]any{time.Since(s.started).Seconds()}, args...)...)
	s.mu.Lock()
	_, _ = s.events.WriteString(line)
	s.mu.Unlock()
	if os.Getenv("SOAK_VERBOSE") != "" {
		fmt.Print(line)
	}
}

// --- processes ---------------------------------------------------------

func (s *soak) startAll(ctx context.Context) {
	if err := s.start(s.reg); err != nil {
		s.t.Fatal(err)
	}
	for _, n := range s.clients {
		if err := s.start(n); err != nil {
			s.t.Fatal(err)
		}
	}
	// Every client sees every other online before the chaos begins.
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for _, a := range s.clients {
		for _, b := range s.clients {
			if a != b {
				if err := s.current(a).rpc.awaitOnline(wctx, b.name); err != nil {
					s.t.Fatalf("before the faults: %v (logs in %s)", err, s.dir)
				}
			}
		}
	}
	// Every client writes first to every other, so that each is the
	// other's contact before the chaos (once strangers' messages are held
	// as requests, this is where requests get accepted too).
	r := rand.New(rand.NewPCG(s.seed, 0))
	for _, a := range s.clients {
		for _, b := range s.clients {
			if a != b {
				s.sendMessage(a, b, r)
			}
		}
	}
}

func (s *soak) current(n *node) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !n.up {
		return nil
	}
	return n.cur
}

// start runs n's process (the registry, or a client on its profile) and,
// for the registry, waits until it listens.
func (s *soak) start(n *node) error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== soak: start at %s\n", time.Now().UTC().Format(time.RFC3339Nano))
	var argv []string
	if n.registry {
		argv = append(n.host.Wrap(), chatxBin, "registry", "--listen", registryIP.String()+":5000", "--data", s.regData)
	} else {
		argv = append(n.host.Wrap(), chatxBin, "jsonrpc", "--name", n.name, "--profile", n.dirs.profile,
			"--registry", s.regURL, "--downloads", n.dirs.downloads,
			"--listen-tcp", "0.0.0.0:0", "--listen-udp", "0.0.0.0:0", "--auto-accept")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	// A process group of its own: a Ctrl-C at the terminal reaches the
	// soak, which ends its processes itself, by PID.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	found := make(chan string, 1)
	var pw *io.PipeWriter
	if n.registry {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		cmd.Stdout, cmd.Stderr = io.MultiWriter(pw, logf), logf
		go watchListenLine(pr, found)
	} else {
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		cmd.Stderr = logf
		p.rpc = &rpcClient{t: s.t, name: n.name, cmd: cmd, stdin: stdin, logs: &syncBuffer{},
			pending: map[int]chan rpcResponse{}, notes: make(chan rpcNote, 1024), exited: make(chan struct{})}
		go p.rpc.read(stdout)
		go drainNotes(p.rpc)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	p.pid = cmd.Process.Pid
	s.mu.Lock()
	n.cur, n.up, n.stopped, n.expected = p, true, false, false
	n.stats.Starts++
	n.changed = time.Now()
	s.mu.Unlock()
	s.logEvent("%s started, pid %d", n.name, p.pid)
	go func() {
		err := cmd.Wait()
		if pw != nil {
			pw.Close()
		}
		logf.Close()
		close(p.exited)
		s.exited(n, p, err)
	}()
	if !n.registry {
		return nil
	}
	select {
	case url := <-found:
		if s.regURL == "" {
			s.regURL = url
		} else if url != s.regURL {
			return fmt.Errorf("the registry came back as %s, was %s", url, s.regURL)
		}
		return nil
	case <-p.exited:
		return fmt.Errorf("registry exited at start (log %s)", n.logPath)
	case <-time.After(60 * time.Second):
		return fmt.Errorf("registry did not start in 60 s (log %s)", n.logPath)
	}
}

// drainNotes keeps the client's notifications flowing; the ledger reads the
// outcome back from history and transfers at the end, not from these.
func drainNotes(c *rpcClient) {
	for {
		select {
		case <-c.notes:
		case <-c.exited:
			return
		}
	}
}

// exited is called when a process of n ended. An exit nobody asked for is
// a crash: it is counted and the process is started again.
func (s *soak) exited(n *node, p *proc, err error) {
	s.mu.Lock()
	if n.cur != p {
		s.mu.Unlock()
		return
	}
	crash := !n.expected
	n.up, n.stopped = false, false
	n.changed = time.Now()
	if crash {
		n.stats.Crashes++
	}
	s.mu.Unlock()
	if !crash {
		return
	}
	s.logEvent("CRASH: %s (pid %d) exited on its own: %v", n.name, p.pid, err)
	fmt.Printf("soak: CRASH: %s (pid %d) exited on its own: %v (log %s)\n", n.name, p.pid, err, n.logPath)
	time.Sleep(2 * time.Second)
	s.mu.Lock()
	again := !n.up && !n.expected
	s.mu.Unlock()
	if again {
		if err := s.start(n); err != nil {
			s.logEvent("restart of %s after its crash: %v", n.name, err)
		}
	}
}

// peakRSS reads VmHWM of a live process into its stats.
func (s *soak) peakRSS(n *node) {
	s.mu.Lock()
	p, up := n.cur, n.up
	s.mu.Unlock()
	if !up || p == nil {
		return
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			s.mu.Lock()
			n.stats.PeakRSSKiB = max(n.stats.PeakRSSKiB, kib)
			s.mu.Unlock()
		}
	}
}

// kill ends n's process with SIGKILL (its PID only) and waits for it.
func (s *soak) kill(n *node) {
	s.peakRSS(n)
	s.mu.Lock()
	p := n.cur
	if !n.up || p == nil {
		s.mu.Unlock()
		return
	}
	n.expected = true
	s.mu.Unlock()
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	<-p.exited
}

func (s *soak) signal(n *node, sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !n.up || n.cur == nil {
		return
	}
	_ = syscall.Kill(n.cur.pid, sig)
	n.stopped = sig == syscall.SIGSTOP
	n.changed = time.Now()
}

// stopAll ends every process the documented way (stdin closed for a
// client, SIGTERM for the registry); one that does not go in 20 s is killed.
func (s *soak) stopAll() {
	for _, n := range append(append([]*node(nil), s.clients...), s.reg) {
		s.peakRSS(n)
		s.mu.Lock()
		p, up := n.cur, n.up
		n.expected = true
		s.mu.Unlock()
		if !up {
			continue
		}
		_ = syscall.Kill(p.pid, syscall.SIGCONT)
		if p.rpc != nil {
			_ = p.rpc.stdin.Close()
		} else {
			_ = syscall.Kill(p.pid, syscall.SIGTERM)
		}
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			s.logEvent("%s did not stop in 20 s; killed", n.name)
			s.mu.Lock()
			s.slowStops = append(s.slowStops, n.name)
			s.mu.Unlock()
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			<-p.exited
		}
	}
}

// killAll is the cleanup of last resort (test failure, signal): every
// process still running is killed by its PID.
func (s *soak) killAll() {
	for _, n := range append(append([]*node(nil), s.clients...), s.reg) {
		s.mu.Lock()
		p, up := n.cur, n.up
		n.expected = true
		s.mu.Unlock()
		if up && p != nil {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			<-p.exited
		}
	}
}

// --- drivers -----------------------------------------------------------

// driverAction is one thing a simulated user does; weight is relative.
type driverAction struct {
	name   string
	weight int
	do     func(s *soak, n *node, to *node, r *rand.Rand)
}

var driverActions = []driverAction{
	{"send", 90, (*soak).sendMessage},
	{"sendFile", 10, (*soak).sendFile},
}

// drive is one client's user: an action every 2 s on average.
func (s *soak) drive(ctx context.Context, n *node, r *rand.Rand) {
	total := 0
	for _, a := range driverActions {
		total += a.weight
	}
	for {
		gap := time.Duration(r.ExpFloat64() * float64(2*time.Second))
		gap = min(max(gap, 20*time.Millisecond), 15*time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(gap):
		}
		var to *node
		for to == nil || to == n {
			to = s.clients[r.IntN(len(s.clients))]
		}
		pick := r.IntN(total)
		for _, a := range driverActions {
			if pick < a.weight {
				a.do(s, n, to, r)
				break
			}
			pick -= a.weight
		}
	}
}

func (s *soak) refusal(method string, err error) {
	var re *rpcError
	key := method + ": no answer"
	if errors.As(err, &re) {
		key = fmt.Sprintf("%s: error %d", method, re.Code)
	}
	s.mu.Lock()
	s.refusals[key]++
	s.mu.Unlock()
}

func (s *soak) sendMessage(n, to *node, r *rand.Rand) {
	p := s.current(n)
	if p == nil || n.seq[to.name] >= maxPerConversation {
		return
	}
	n.seq[to.name]++
	seq := n.seq[to.name]
	pad := make([]byte, r.IntN(100))
	for i := range pad {
		pad[i] = "abcdefghijklmnopqrstuvwxyz"[r.IntN(26)]
	}
	text := ledger.Text(n.name, to.name, seq, string(pad))
	var m messageNote
	err := p.rpc.tryCall("send", map[string]any{"to": to.name, "text": text}, &m)
	var re *rpcError
	switch {
	case err == nil:
		s.led.Sent(n.name, to.name, seq, m.ID, text)
	case errors.As(err, &re):
		s.refusal("send", err)
	default:
		s.led.Unconfirmed(n.name, to.name, text)
		s.refusal("send", err)
	}
}

// sendFile offers a file of seeded random bytes, 1 KiB to 16 MiB
// (log-uniform).
func (s *soak) sendFile(n, to *node, r *rand.Rand) {
	size := int64(1024 * (1 << r.IntN(14)))
	size += r.Int64N(size)
	n.mu.Lock()
	n.files++
	k := n.files
	n.mu.Unlock()
	s.offerFile(n, to, r, size, fmt.Sprintf("%s-to-%s-%d.bin", n.name, to.name, k))
}

// offerFile writes size seeded random bytes under name and offers them.
func (s *soak) offerFile(n, to *node, r *rand.Rand, size int64, name string) {
	p := s.current(n)
	if p == nil {
		return
	}
	var key [32]byte
	for i := range key {
		key[i] = byte(r.Uint32())
	}
	data := make([]byte, size)
	_, _ = rand.NewChaCha8(key).Read(data)
	path := filepath.Join(n.src, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		s.t.Errorf("write %s: %v", path, err)
		return
	}
	sum := sha256.Sum256(data)
	var tr transferNote
	if err := p.rpc.tryCall("sendFile", map[string]any{"to": to.name, "path": path}, &tr); err != nil {
		s.refusal("sendFile", err)
		return
	}
	s.led.Offered(n.name, to.name, tr.ID, name, size, hex.EncodeToString(sum[:]))
}

// --- faults ------------------------------------------------------------

// faultKind is one fault the injector can apply; apply returns false when
// the target is busy with another fault (the injector then tries later).
type faultKind struct {
	name   string
	weight int
	apply  func(s *soak, ctx context.Context, r *rand.Rand) bool
}

var faultKinds = []faultKind{
	{"kill -9 client", 4, (*soak).faultKillClient},
	{"SIGSTOP client", 2, (*soak).faultStopClient},
	{"kill -9 registry", 1, (*soak).faultKillRegistry},
	{"SIGSTOP registry", 1, (*soak).faultStopRegistry},
	{"blackhole site", 2, (*soak).faultBlackhole},
	{"cut site from registry", 1, (*soak).faultCutRegistry},
	{"partition two sites", 1, (*soak).faultPartition},
	{"UDP loss", 2, (*soak).faultLoss},
	{"downloads disk full", 1, (*soak).faultDiskFull},
}

// chosenFaults is faultKinds, or with SOAK_FAULTS=a,b only the kinds whose
// name contains one of the words (to hammer one path while fixing it).
func chosenFaults() []faultKind {
	v := os.Getenv("SOAK_FAULTS")
	if v == "" {
		return faultKinds
	}
	var out []faultKind
	for _, f := range faultKinds {
		for _, w := range strings.Split(v, ",") {
			if w = strings.TrimSpace(w); w != "" && strings.Contains(f.name, w) {
				out = append(out, f)
				break
			}
		}
	}
	if len(out) == 0 {
		panic("SOAK_FAULTS=" + v + " matches no fault kind")
	}
	return out
}

func uniform(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// inject applies a fault every 2-15 s; faults last their own seeded time
// and overlap when they touch different targets.
func (s *soak) inject(ctx context.Context, r *rand.Rand) {
	s.mu.Lock()
	s.faultsOn = true
	s.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	kinds := chosenFaults()
	total := 0
	for _, f := range kinds {
		total += f.weight
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(uniform(r, 2*time.Second, 15*time.Second)):
		}
		pick := r.IntN(total)
		for _, f := range kinds {
			if pick < f.weight {
				// Each fault gets its own generator from this one, so the
				// schedule does not depend on how faults interleave.
				fr := rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
				wg.Add(1)
				go func() {
					defer wg.Done()
					if f.apply(s, ctx, fr) {
						s.mu.Lock()
						s.faults[f.name]++
						s.mu.Unlock()
					}
				}()
				break
			}
			pick -= f.weight
		}
	}
}

// hold waits d, or less when the run ends.
func hold(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (s *soak) claimProc(n *node) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.procBusy || !n.up {
		return false
	}
	n.procBusy = true
	return true
}

func (s *soak) release(n *node) {
	s.mu.Lock()
	n.procBusy = false
	s.mu.Unlock()
}

func (s *soak) pickClient(r *rand.Rand) *node { return s.clients[r.IntN(len(s.clients))] }

func (s *soak) faultKillClient(ctx context.Context, r *rand.Rand) bool {
	return s.killRestart(s.pickClient(r), uniform(r, 0, 10*time.Second))
}

func (s *soak) faultKillRegistry(ctx context.Context, r *rand.Rand) bool {
	return s.killRestart(s.reg, uniform(r, 0, 15*time.Second))
}

func (s *soak) killRestart(n *node, down time.Duration) bool {
	if !s.claimProc(n) {
		return false
	}
	defer s.release(n)
	s.logEvent("fault: kill -9 %s, back in %s", n.name, down.Round(time.Millisecond))
	s.kill(n)
	s.mu.Lock()
	n.stats.Kills++
	s.mu.Unlock()
	time.Sleep(down) // also when the run ends: the heal waits for it
	for attempt := 0; ; attempt++ {
		err := s.start(n)
		if err == nil {
			return true
		}
		s.logEvent("restart %s: %v", n.name, err)
		if attempt == 3 {
			s.t.Errorf("restart %s: %v", n.name, err)
			return true
		}
		time.Sleep(time.Second)
	}
}

func (s *soak) faultStopClient(ctx context.Context, r *rand.Rand) bool {
	return s.stopCont(s.pickClient(r), uniform(r, 2*time.Second, 40*time.Second))
}

func (s *soak) faultStopRegistry(ctx context.Context, r *rand.Rand) bool {
	return s.stopCont(s.reg, uniform(r, 2*time.Second, 30*time.Second))
}

func (s *soak) stopCont(n *node, d time.Duration) bool {
	if !s.claimProc(n) {
		return false
	}
	defer s.release(n)
	s.logEvent("fault: SIGSTOP %s for %s", n.name, d.Round(time.Millisecond))
	s.peakRSS(n)
	s.signal(n, syscall.SIGSTOP)
	s.mu.Lock()
	n.stats.Stops++
	s.mu.Unlock()
	time.Sleep(d)
	s.signal(n, syscall.SIGCONT)
	s.logEvent("SIGCONT %s", n.name)
	return true
}

// sites are the places network faults hit: every client's site once.
func (s *soak) sites() []*site {
	var out []*site
	seen := map[*site]bool{}
	for _, n := range s.clients {
		if !seen[n.site] {
			seen[n.site] = true
			out = append(out, n.site)
		}
	}
	return out
}

func (s *soak) claimSites(ss ...*site) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range ss {
		if x.busy {
			return false
		}
	}
	for _, x := range ss {
		x.busy = true
	}
	return true
}

func (s *soak) releaseSites(ss ...*site) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range ss {
		x.busy = false
	}
}

// rule loads one fault table into a site: for a router, a forward chain
// (packets to and from its LAN), for a public host an input chain (what
// reaches it; its own packets still leave and vanish, as in a blackhole).
func (s *soak) rule(x *site, table, match string) error {
	hook, dir := "input", "iifname"
	var out string
	if x.router {
		hook = "forward"
	}
	out = fmt.Sprintf("table inet %s {\n\tchain c {\n\t\ttype filter hook %s priority filter - 5; policy accept;\n", table, hook)
	for _, m := range strings.Split(match, "\n") {
		out += fmt.Sprintf("\t\t%s %q %s\n", dir, x.dev, m)
		if x.router {
			out += fmt.Sprintf("\t\toifname %q %s\n", x.dev, m)
		}
	}
	out += "\t}\n}\n"
	return netlab.Nft(x.ns, out)
}

func (s *soak) unrule(x *site, table string) {
	if err := exec.Command("ip", "netns", "exec", x.ns, "nft", "delete", "table", "inet", table).Run(); err != nil {
		s.t.Errorf("remove fault %s from %s: %v", table, x.name, err)
	}
}

func (s *soak) netFault(ctx context.Context, name string, d time.Duration, x []*site, table []string, match []string, set func(on bool)) bool {
	if !s.claimSites(x...) {
		return false
	}
	defer s.releaseSites(x...)
	s.logEvent("fault: %s for %s", name, d.Round(time.Millisecond))
	for i := range x {
		if err := s.rule(x[i], table[i], match[i]); err != nil {
			s.t.Errorf("fault %s: %v", name, err)
			return false
		}
	}
	s.mu.Lock()
	set(true)
	for _, y := range x {
		s.touchSite(y)
	}
	s.mu.Unlock()
	hold(ctx, d)
	for i := range x {
		s.unrule(x[i], table[i])
	}
	s.mu.Lock()
	set(false)
	for _, y := range x {
		s.touchSite(y)
	}
	s.mu.Unlock()
	s.logEvent("healed: %s", name)
	return true
}

func (s *soak) faultBlackhole(ctx context.Context, r *rand.Rand) bool {
	x := s.sites()[r.IntN(len(s.sites()))]
	return s.netFault(ctx, "blackhole "+x.name, uniform(r, 5*time.Second, 60*time.Second),
		[]*site{x}, []string{"soak_blackhole"}, []string{"drop"}, func(on bool) { x.blackholed = on })
}

func (s *soak) faultCutRegistry(ctx context.Context, r *rand.Rand) bool {
	x := s.sites()[r.IntN(len(s.sites()))]
	m := fmt.Sprintf("ip saddr %s drop\nip daddr %s drop", registryIP, registryIP)
	if !x.router {
		m = fmt.Sprintf("ip saddr %s drop", registryIP)
	}
	return s.netFault(ctx, "cut "+x.name+" from the registry", uniform(r, 5*time.Second, 60*time.Second),
		[]*site{x}, []string{"soak_cut"}, []string{m}, func(on bool) { x.cutRegistry = on })
}

func (s *soak) faultPartition(ctx context.Context, r *rand.Rand) bool {
	all := s.sites()
	if len(all) < 2 {
		return false
	}
	i := r.IntN(len(all))
	j := (i + 1 + r.IntN(len(all)-1)) % len(all)
	a, b := all[i], all[j]
	ma := fmt.Sprintf("ip saddr %s drop\nip daddr %s drop", b.addr, b.addr)
	mb := fmt.Sprintf("ip saddr %s drop\nip daddr %s drop", a.addr, a.addr)
	if !a.router {
		ma = fmt.Sprintf("ip saddr %s drop", b.addr)
	}
	if !b.router {
		mb = fmt.Sprintf("ip saddr %s drop", a.addr)
	}
	return s.netFault(ctx, "partition "+a.name+" | "+b.name, uniform(r, 5*time.Second, 60*time.Second),
		[]*site{a, b}, []string{"soak_part", "soak_part"}, []string{ma, mb}, func(bool) {})
}

func (s *soak) faultLoss(ctx context.Context, r *rand.Rand) bool {
	x := s.sites()[r.IntN(len(s.sites()))]
	pct := 1 + r.IntN(20)
	return s.netFault(ctx, fmt.Sprintf("%d%% UDP loss at %s", pct, x.name), uniform(r, 10*time.Second, 90*time.Second),
		[]*site{x}, []string{"soak_loss"}, []string{fmt.Sprintf("meta l4proto udp numgen random mod 100 < %d drop", pct)},
		func(on bool) {
			x.lossPercent = 0
			if on {
				x.lossPercent = pct
			}
		})
}

// faultDiskFull fills the tmpfs under a client's downloads folder to the
// last 64 KiB with a file beside the folder, then deletes it.
func (s *soak) faultDiskFull(ctx context.Context, r *rand.Rand) bool {
	n := s.pickClient(r)
	d := uniform(r, 10*time.Second, 60*time.Second)
	// One full disk at a time: a tmpfs filled is that much memory.
	s.mu.Lock()
	for _, x := range s.clients {
		if x.diskFull {
			s.mu.Unlock()
			return false
		}
	}
	n.diskFull = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		n.diskFull = false
		s.mu.Unlock()
	}()
	// Half the time the disk fills while a 16 MiB file is arriving.
	if r.IntN(2) == 0 {
		var q *node
		for q == nil || q == n {
			q = s.pickClient(r)
		}
		fr := rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
		go s.offerFile(q, n, fr, 16<<20, fmt.Sprintf("%s-to-%s-diskfault-%d.bin", q.name, n.name, fr.Uint32()))
		time.Sleep(uniform(r, 200*time.Millisecond, 2*time.Second))
	}
	var st unix.Statfs_t
	if err := unix.Statfs(n.disk, &st); err != nil {
		s.t.Errorf("statfs %s: %v", n.disk, err)
		return false
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	filler := filepath.Join(n.disk, "filler")
	f, err := os.Create(filler)
	if err != nil {
		s.t.Errorf("disk fault: %v", err)
		return false
	}
	if fill := free - 64<<10; fill > 0 {
		if err := unix.Fallocate(int(f.Fd()), 0, 0, fill); err != nil {
			s.logEvent("disk fault: fallocate %d: %v", fill, err)
		}
	}
	f.Close()
	s.logEvent("fault: %s's downloads disk full for %s", n.name, d.Round(time.Millisecond))
	hold(ctx, d)
	if err := os.Remove(filler); err != nil {
		s.t.Errorf("disk fault: %v", err)
	}
	s.logEvent("healed: %s's disk freed", n.name)
	return true
}

// healAll is the end of the chaos: the injector has returned, so every
// fault is healed; this checks that every process is up and running.
func (s *soak) healAll(ctx context.Context) {
	for _, n := range append([]*node{s.reg}, s.clients...) {
		s.mu.Lock()
		up, stopped := n.up, n.stopped
		s.mu.Unlock()
		if stopped {
			s.signal(n, syscall.SIGCONT)
		}
		if !up {
			if err := s.start(n); err != nil {
				s.t.Errorf("after the faults: %v", err)
			}
		}
	}
	for _, x := range append(s.sites(), s.reg.site) {
		out, _ := exec.Command("ip", "netns", "exec", x.ns, "nft", "list", "tables").Output()
		if strings.Contains(string(out), "soak_") {
			s.t.Errorf("a fault table is left in %s after the heal:\n%s", x.name, out)
		}
	}
}

// --- presence ----------------------------------------------------------

// sample compares every client's listPeers with the truth every 5 s, and
// records peak memory.
func (s *soak) sample(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(sampleEvery):
		}
		s.peakRSS(s.reg)
		var wg sync.WaitGroup
		for _, o := range s.clients {
			s.peakRSS(o)
			wg.Add(1)
			go func() { defer wg.Done(); s.samplePresence(ctx, o) }()
		}
		wg.Wait()
	}
}

// healthy: n runs, is not stopped, and its site can reach the registry,
// which runs and is not stopped.
func (s *soak) healthyLocked(n *node) bool {
	return n.up && !n.stopped && !n.site.blackholed && !n.site.cutRegistry && s.reg.up && !s.reg.stopped
}

func (s *soak) samplePresence(ctx context.Context, o *node) {
	p := s.current(o)
	if p == nil {
		return
	}
	s.mu.Lock()
	stopped := o.stopped
	s.mu.Unlock()
	if stopped {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var peers []struct {
		Name   string `json:"name"`
		Online bool   `json:"online"`
	}
	done := make(chan error, 1)
	go func() { done <- p.rpc.tryCall("listPeers", map[string]any{}, &peers) }()
	select {
	case err := <-done:
		if err != nil {
			return
		}
	case <-cctx.Done():
		return
	}
	now := time.Now()
	shown := map[string]bool{}
	for _, x := range peers {
		shown[x.Name] = x.Online
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.presence[o.name] == nil {
		s.presence[o.name] = &ledger.Presence{}
	}
	ps := s.presence[o.name]
	ps.Samples++
	for _, q := range s.clients {
		if q == o {
			continue
		}
		lan := q.site == o.site && q.site.router
		expect := -1
		switch {
		case lan && o.up && !o.stopped:
			expect = b2i(q.up && !q.stopped)
		case s.healthyLocked(o):
			expect = b2i(s.healthyLocked(q))
		}
		changed := maxTime(o.changed, q.changed, s.reg.changed)
		key := [2]string{o.name, q.name}
		v := s.pairs[key]
		if v == nil {
			v = &pairView{expect: -2}
			s.pairs[key] = v
		}
		if expect != v.expect || changed.After(v.since) {
			v.expect, v.since, v.lastRight, v.counted = expect, now, now, false
		}
		if expect < 0 {
			continue
		}
		if b2i(shown[q.name]) == expect {
			v.lastRight, v.counted = now, false
			continue
		}
		bound := presenceBound
		if lan && expect == 0 {
			bound = lanOfflineBound
		}
		wrong := now.Sub(v.lastRight)
		ps.LongestWrongS = max(ps.LongestWrongS, wrong.Seconds())
		if wrong <= bound {
			continue
		}
		if !v.counted {
			v.counted = true
			if expect == 1 {
				ps.OnlineAsOff++
			} else {
				ps.OfflineAsOn++
			}
			line := fmt.Sprintf("PRESENCE: %s shows %s %s for %.0f s (longer than %s)", o.name, q.name,
				map[int]string{0: "online while down", 1: "offline while up"}[expect], wrong.Seconds(), bound)
			go s.logEvent("%s", line)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func maxTime(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// touchSite stamps a network fault's change on every node it concerns,
// so the presence sampler restarts its clock.
func (s *soak) touchSite(x *site) {
	for _, n := range s.clients {
		if n.site == x {
			n.changed = time.Now()
		}
	}
}

// --- the end -----------------------------------------------------------

// settle waits until every confirmed message is at its receiver and every
// offered file is in a final state at its receiver, or until max.
func (s *soak) settle(ctx context.Context, maxWait time.Duration) time.Duration {
	start := time.Now()
	deadline := start.Add(maxWait)
	for {
		obs := s.observe(ctx)
		rep := s.led.Compare(obs)
		m, f := rep.Totals()
		pending := m.Lost + m.Unacked + f.NotFinished
		var where []string
		for _, r := range rep.Messages {
			if r.Lost+r.Unacked > 0 {
				where = append(where, fmt.Sprintf("%s: %d messages", r.Conversation, r.Lost+r.Unacked))
			}
		}
		for _, r := range rep.Files {
			if r.NotFinished > 0 {
				where = append(where, fmt.Sprintf("%s: %d files", r.Conversation, r.NotFinished))
			}
		}
		s.logEvent("settle: %d messages not yet at the receiver or not acknowledged, %d files not final %v", m.Lost+m.Unacked, f.NotFinished, where)
		if pending == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(start)
		}
		hold(ctx, 5*time.Second)
	}
}

// observe reads every client's history with every other client and its
// transfers, and hashes the files the receivers saved.
func (s *soak) observe(ctx context.Context) ledger.Observation {
	obs := ledger.Observation{Received: map[string][]ledger.Message{}, Outgoing: map[string][]ledger.Message{}, Transfers: map[string][]ledger.Transfer{}}
	for _, n := range s.clients {
		p := s.current(n)
		if p == nil {
			continue
		}
		for _, q := range s.clients {
			if q == n {
				continue
			}
			var hist []struct {
				ID        string `json:"id"`
				From      string `json:"from"`
				To        string `json:"to"`
				Direction string `json:"direction"`
				Text      string `json:"text"`
				State     string `json:"state"`
			}
			if err := p.rpc.tryCall("history", map[string]any{"with": q.name, "limit": 1000}, &hist); err != nil {
				s.logEvent("observe: %s history with %s: %v", n.name, q.name, err)
				continue
			}
			if len(hist) == 1000 {
				s.t.Errorf("%s's history with %s is longer than one history call returns (1000): the ledger cannot read it all", n.name, q.name)
			}
			for _, h := range hist {
				m := ledger.Message{ID: h.ID, From: h.From, To: h.To, Text: h.Text, State: h.State}
				if h.Direction == "in" {
					obs.Received[n.name] = append(obs.Received[n.name], m)
				} else {
					obs.Outgoing[n.name] = append(obs.Outgoing[n.name], m)
				}
			}
		}
		var trs []struct {
			ID        string `json:"id"`
			Peer      string `json:"peer"`
			Direction string `json:"direction"`
			State     string `json:"state"`
			Reason    string `json:"reason"`
			SavedAs   string `json:"savedAs"`
		}
		if err := p.rpc.tryCall("transfers", nil, &trs); err != nil {
			s.logEvent("observe: %s transfers: %v", n.name, err)
			continue
		}
		for _, tr := range trs {
			if tr.Direction != "in" {
				continue
			}
			t := ledger.Transfer{ID: tr.ID, From: tr.Peer, State: tr.State, Reason: tr.Reason, SavedAs: tr.SavedAs}
			if tr.State == "completed" && tr.SavedAs != "" {
				t.SHA256 = savedSHA256(filepath.Join(n.dirs.downloads, filepath.FromSlash(tr.SavedAs)))
			}
			obs.Transfers[n.name] = append(obs.Transfers[n.name], t)
		}
	}
	return obs
}

// savedSHA256 is the hex SHA-256 of a saved file, "" when it cannot be read.
func savedSHA256(path string) string {
	sum, err := fileSHA256(path)
	if err != nil {
		return ""
	}
	return hex.EncodeToString(sum[:])
}

// panics counts the lines of a log that show a Go panic, a fatal runtime
// error or a data race report.
func panics(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") || strings.Contains(line, "WARNING: DATA RACE") {
			n++
		}
	}
	return n
}

func (s *soak) report(rep ledger.Report, dur, settled time.Duration, interrupted bool) {
	var procs []ledger.Process
	presence := map[string]ledger.Presence{}
	crashes := 0
	s.mu.Lock()
	for _, n := range append([]*node{s.reg}, s.clients...) {
		n.stats.Panics = panics(n.logPath)
		procs = append(procs, n.stats)
		crashes += n.stats.Crashes + n.stats.Panics
		if ps := s.presence[n.name]; ps != nil {
			presence[n.name] = *ps
		}
	}
	faults := s.faults
	refusals := s.refusals
	s.mu.Unlock()

	var out strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&out, "\nchatx soak: seed %d, %s of traffic and faults, settle %s, %d clients, machine %s (%d CPUs)\n",
		s.seed, dur, settled.Round(time.Second), len(s.clients), host, runtime.NumCPU())
	fmt.Fprintf(&out, "faults applied:")
	for _, f := range faultKinds {
		fmt.Fprintf(&out, " %s %d;", f.name, faults[f.name])
	}
	fmt.Fprintf(&out, " clock jumps: not applied (CLOCK_REALTIME is machine-wide; time namespaces offset only monotonic/boot clocks)\n")
	fmt.Fprintf(&out, "requests refused or unanswered (not in the ledger):")
	if len(refusals) == 0 {
		fmt.Fprintf(&out, " none")
	}
	for k, v := range refusals {
		fmt.Fprintf(&out, " %s ×%d;", k, v)
	}
	if len(s.slowStops) > 0 {
		fmt.Fprintf(&out, "\nslow to stop at the end (more than 20 s after stdin closed or SIGTERM; killed): %v", s.slowStops)
	}
	out.WriteString("\n\n")
	ledger.Print(&out, rep, procs, presence, presenceBound.Seconds())
	problems := rep.Problems()
	if crashes > 0 {
		problems = append(problems, fmt.Sprintf("%d crashes or panics (logs in %s)", crashes, s.dir))
	}
	for name, ps := range presence {
		if ps.OnlineAsOff+ps.OfflineAsOn > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d presence mistakes longer than the bound (events.log)", name, ps.OnlineAsOff+ps.OfflineAsOn))
		}
	}
	if interrupted {
		problems = append(problems, "interrupted by a signal")
	}
	if len(problems) == 0 {
		out.WriteString("\nresult: PASS — nothing lost, duplicated, corrupted or crashed\n")
	} else {
		out.WriteString("\nresult: FAIL\n  " + strings.Join(problems, "\n  ") + "\n")
	}
	fmt.Fprintf(&out, "replay: make soak SOAK=%s SOAK_SEED=%d   (logs and events.log in %s)\n", dur, s.seed, s.dir)
	fmt.Print(out.String())
	_ = os.WriteFile(filepath.Join(s.dir, "result.txt"), []byte(out.String()), 0o644)
	if len(problems) > 0 {
		s.t.Fail()
	}
}
