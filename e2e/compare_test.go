package e2e_test

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// make bench-compare: chatx beside croc and magic-wormhole, the same file
// over loopback, interleaved rounds (bench/compare.sh installs the tools).
var (
	compareRun    = flag.Bool("compare", false, "TestCompare: run the side-by-side benchmark (make bench-compare)")
	compareMiB    = flag.Int("compare.mib", 1024, "TestCompare: file size in MiB")
	compareRounds = flag.Int("compare.rounds", 4, "TestCompare: interleaved rounds")
	compareCroc   = flag.String("compare.croc", "", "TestCompare: croc binary (empty: croc on PATH, else skipped)")
	compareOut    = flag.String("compare.out", "", "TestCompare: also write the table to this file")
)

// toolRun is one transfer by one tool: wall time from the sender's start
// to both processes' exit, CPU and peak RSS of each side.
type toolRun struct {
	took             time.Duration
	cpuSend, cpuRecv time.Duration
	rssSend, rssRecv int64 // bytes
}

type compareTool struct {
	name string
	// run sends src into the empty folder to and returns when both ends
	// exited; the received file must then be to/<base of src>.
	run func(ctx context.Context, t *testing.T, src, to string) (toolRun, error)
}

func TestCompare(t *testing.T) {
	if !*compareRun {
		t.Skip("the side-by-side benchmark runs with -compare (make bench-compare)")
	}
	size := int64(*compareMiB) << 20
	base := t.TempDir()
	src := filepath.Join(base, "random.bin")
	// Streamed, not held: a child's peak RSS as the kernel counts it
	// starts at this process's.
	if err := streamRandomFile(src, size); err != nil {
		t.Fatal(err)
	}
	want, err := fileSHA256(src)
	if err != nil {
		t.Fatal(err)
	}

	tools := []compareTool{chatxTool(t, "udp"), chatxTool(t, "auto")}
	if croc := lookTool(*compareCroc, "croc"); croc != "" {
		tools = append(tools, crocTool(t, croc))
	} else {
		t.Log("croc not found: skipped (CROC=PATH, or make bench-compare builds it)")
	}
	if wh, twist := lookTool("", "wormhole"), firstTool("twist", "twist3"); wh != "" && twist != "" {
		tools = append(tools, wormholeTool(t, wh, twist))
	} else {
		t.Log("magic-wormhole not found: skipped (make bench-compare installs it)")
	}
	runs := make(map[string][]toolRun)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	for round := range *compareRounds {
		// Rotate the order, so no tool always runs first (or last).
		for i := range tools {
			tool := tools[(i+round)%len(tools)]
			to := filepath.Join(base, fmt.Sprintf("to-%s-%d", strings.ReplaceAll(tool.name, " ", "-"), round))
			if err := os.MkdirAll(to, 0o700); err != nil {
				t.Fatal(err)
			}
			r, err := tool.run(ctx, t, src, to)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round+1, tool.name, err)
			}
			got := filepath.Join(to, "random.bin")
			if sum, err := fileSHA256(got); err != nil || sum != want {
				t.Fatalf("round %d, %s: the received file differs from the source", round+1, tool.name)
			}
			_ = os.RemoveAll(to)
			runs[tool.name] = append(runs[tool.name], r)
			t.Logf("round %d: %-28s %6.0f MB/s  %.2f s  CPU %.2f + %.2f s  RSS %d + %d MiB", round+1, tool.name,
				mb(size, r.took), r.took.Seconds(), r.cpuSend.Seconds(), r.cpuRecv.Seconds(), r.rssSend>>20, r.rssRecv>>20)
		}
	}
	table := compareTable(size, tools, runs)
	fmt.Print(table)
	if *compareOut != "" {
		if err := os.WriteFile(*compareOut, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func compareTable(size int64, tools []compareTool, runs map[string][]toolRun) string {
	med := func(rs []toolRun, f func(toolRun) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	gib := float64(size) / (1 << 30)
	ref := med(runs[tools[0].name], func(r toolRun) float64 { return mb(size, r.took) })
	var b strings.Builder
	fmt.Fprintf(&b, "\n| tool (%d MiB, loopback, median of %d) | MB/s | ratio to %s | CPU s per GiB, sender + receiver | peak RSS MiB, sender + receiver |\n|---|---|---|---|---|\n",
		size>>20, len(runs[tools[0].name]), tools[0].name)
	for _, tool := range tools {
		rs := runs[tool.name]
		rate := med(rs, func(r toolRun) float64 { return mb(size, r.took) })
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.2f + %.2f | %.0f + %.0f |\n", tool.name, rate, rate/ref,
			med(rs, func(r toolRun) float64 { return r.cpuSend.Seconds() / gib }),
			med(rs, func(r toolRun) float64 { return r.cpuRecv.Seconds() / gib }),
			med(rs, func(r toolRun) float64 { return float64(r.rssSend) / (1 << 20) }),
			med(rs, func(r toolRun) float64 { return float64(r.rssRecv) / (1 << 20) }))
	}
	return b.String()
}

func mb(size int64, d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }

func lookTool(given, name string) string {
	if given != "" {
		return given
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

// firstTool is the first of names on PATH (Debian names twisted's runner
// twist3).
func firstTool(names ...string) string {
	for _, n := range names {
		if p := lookTool("", n); p != "" {
			return p
		}
	}
	return ""
}

// streamRandomFile writes size random bytes to path through a small buffer.
func streamRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(time.Now().UnixNano()))
	if _, err := io.CopyN(f, mrand.NewChaCha8(seed), size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuOf is the CPU time a finished process used.
func cpuOf(ps *os.ProcessState) time.Duration {
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}

// peakRSS follows a running process's VmHWM in /proc until stop is closed
// and returns the last value read, in bytes. (The rusage of a finished
// child is no use: Linux counts in it the RSS of the parent it was forked
// from.)
func peakRSS(pid int, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var last int64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						var kb int64
						if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb); err == nil && kb<<10 > last {
							last = kb << 10
						}
					}
				}
			}
			select {
			case <-stop:
				out <- last
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// pair starts the sender and then the receiver, timing from the sender's
// start to both exits.
func pair(ctx context.Context, send, recv *exec.Cmd, ready string) (toolRun, error) {
	var recvOut syncBuffer
	recv.Stdout, recv.Stderr = &recvOut, &recvOut
	return both(ctx, send, recv, &recvOut, ready)
}

// both starts the sender and, unless the receiver runs already (ready
// ""), the receiver once the sender printed ready; then waits for both.
func both(ctx context.Context, send, recv *exec.Cmd, recvOut *syncBuffer, ready string) (toolRun, error) {
	var sendOut syncBuffer
	send.Stdout, send.Stderr = &sendOut, &sendOut
	kill := func(c *exec.Cmd) {
		if c.Process != nil {
			_ = c.Process.Kill()
			_, _ = c.Process.Wait()
		}
	}
	began := time.Now()
	if err := send.Start(); err != nil {
		kill(recv)
		return toolRun{}, err
	}
	sendDone, recvDone := make(chan struct{}), make(chan struct{})
	sendRSS := peakRSS(send.Process.Pid, sendDone)
	errs := make(chan error, 2)
	go func() { err := send.Wait(); close(sendDone); errs <- err }()
	if ready != "" {
		for deadline := time.Now().Add(5 * time.Minute); !strings.Contains(sendOut.String(), ready); {
			exited := false
			select {
			case <-sendDone:
				exited = true
			default:
			}
			if exited || time.Now().After(deadline) {
				kill(send)
				return toolRun{}, fmt.Errorf("the sender never said %q:\n%s", ready, sendOut.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := recv.Start(); err != nil {
			kill(send)
			return toolRun{}, err
		}
	}
	recvRSS := peakRSS(recv.Process.Pid, recvDone)
	go func() { err := recv.Wait(); close(recvDone); errs <- err }()
	stop := context.AfterFunc(ctx, func() { _ = send.Process.Kill(); _ = recv.Process.Kill() })
	defer stop()
	var first error
	for range 2 {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	took := time.Since(began)
	if first != nil {
		return toolRun{}, fmt.Errorf("%w\nsender:\n%s\nreceiver:\n%s", first, sendOut.String(), recvOut.String())
	}
	return toolRun{took: took, cpuSend: cpuOf(send.ProcessState), cpuRecv: cpuOf(recv.ProcessState),
		rssSend: <-sendRSS, rssRecv: <-recvRSS}, nil
}

// chatxTool: chatx send / chatx receive --yes through a local registry,
// each a fresh process as a user would run them; the time includes
// logging in and finding the peer. The receiver is waiting already. The
// sender runs with --file-path filePath: udp (QUIC) or auto (on loopback
// the message link is direct TCP, so the file rides TLS 1.3 over TCP).
func chatxTool(t *testing.T, filePath string) compareTool {
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	alice, bob := newDirs(t, "alice"), newDirs(t, "bob")
	args := func(name string, dirs clientDirs, rest ...string) []string {
		return append([]string{rest[0], "--name", name, "--profile", dirs.profile, "--registry", reg.url,
			"--listen-tcp", "127.0.0.1:0", "--listen-udp", "127.0.0.1:0", "--accept-from-anyone"}, rest[1:]...)
	}
	name := "chatx (QUIC)"
	if filePath != "udp" {
		name = "chatx (--file-path " + filePath + ": TCP)"
	}
	return compareTool{name: name, run: func(ctx context.Context, t *testing.T, src, to string) (toolRun, error) {
		recv := exec.Command(chatxBin, args("bob", bob, "receive", "--yes", "--to", to)...)
		send := exec.Command(chatxBin, args("alice", alice, "send", "--file-path", filePath, "bob", src)...)
		// The receiver must be listening before the sender starts: start
		// it, then wait until it says so.
		var recvOut syncBuffer
		recv.Stdout, recv.Stderr = &recvOut, &recvOut
		if err := recv.Start(); err != nil {
			return toolRun{}, err
		}
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(recvOut.String(), "waiting for files"); {
			if time.Now().After(deadline) {
				_ = recv.Process.Kill()
				_, _ = recv.Process.Wait()
				return toolRun{}, fmt.Errorf("receiver not ready:\n%s", recvOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return both(ctx, send, recv, &recvOut, "")
	}}
}

// freePort is a TCP port free on loopback now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// daemon starts a helper server for the whole test and stops it at the end.
func daemon(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = t.TempDir() // twistd daemons write their state (transit relay: relay.sqlite, twistd.pid) to the working directory
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("%s:\n%s", name, out.String())
		}
	})
}

// waitPort waits until something listens on 127.0.0.1:port.
func waitPort(t *testing.T, port string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// crocTool: croc through a relay of its own on loopback (the sender's
// built-in local relay is off, so every byte goes through the relay, as
// between two machines), compression off, the receiver started right after
// the sender with the same code. Both croc v10.7.0 (the module proxy's,
// which compresses by default) and croc 11.x (built from its repository:
// BENCHMARKS.md) take the same flags and the code from CROC_SECRET; they
// differ in what the sender prints once it waits for the receiver.
func crocTool(t *testing.T, croc string) compareTool {
	version := crocVersion(t, croc)
	port := freePortRun(t, 5)
	ports := make([]string, 5)
	for i := range ports {
		ports[i] = fmt.Sprint(port + i)
	}
	daemon(t, croc, "relay", "--host", "127.0.0.1", "--ports", strings.Join(ports, ","))
	waitPort(t, ports[0])
	relay := "127.0.0.1:" + ports[0]
	// v10: "Code is: …"; v11: "On the other computer, run: …".
	ready := "Code is"
	if !strings.HasPrefix(version, "v10.") && !strings.HasPrefix(version, "10.") {
		ready = "On the other computer"
	}
	n := 0
	return compareTool{name: "croc " + version + " (relay, no compression)", run: func(ctx context.Context, t *testing.T, src, to string) (toolRun, error) {
		n++
		code := fmt.Sprintf("chatx-compare-%d-%d", os.Getpid(), n)
		// croc takes a chosen code only from CROC_SECRET on Unix. It
		// hashes the file first, then joins the relay and prints the code;
		// a receiver that comes first would take the sender's role.
		send := exec.Command(croc, "--relay", relay, "--no-compress", "--yes", "send", "--no-local", src)
		recv := exec.Command(croc, "--relay", relay, "--no-compress", "--yes", "--quiet", "--overwrite", "--out", to)
		send.Env = append(os.Environ(), "CROC_SECRET="+code)
		recv.Env = send.Env
		return pair(ctx, send, recv, ready)
	}}
}

// crocVersion is what croc --version says after "croc version ", e.g.
// "v10.7.0" or "11.2.5".
func crocVersion(t *testing.T, croc string) string {
	t.Helper()
	out, err := exec.Command(croc, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", croc, err, out)
	}
	v := strings.TrimSpace(string(out))
	if i := strings.LastIndex(v, " "); i >= 0 {
		v = v[i+1:]
	}
	return v
}

// wormholeTool: magic-wormhole 0.12 with a mailbox server and a transit
// relay of its own on loopback (it connects directly when it can, as here).
func wormholeTool(t *testing.T, wormhole, twist string) compareTool {
	mailbox, transit := freePort(t), freePort(t)
	daemon(t, twist, "wormhole-mailbox", "--port=tcp:"+mailbox+":interface=127.0.0.1")
	daemon(t, twist, "transitrelay", "--port=tcp:"+transit+":interface=127.0.0.1")
	waitPort(t, mailbox)
	waitPort(t, transit)
	args := []string{"--relay-url", "ws://127.0.0.1:" + mailbox + "/v1", "--transit-helper", "tcp:127.0.0.1:" + transit}
	n := 0
	return compareTool{name: "magic-wormhole", run: func(ctx context.Context, t *testing.T, src, to string) (toolRun, error) {
		n++
		code := fmt.Sprintf("%d-chatx-compare", 100+n)
		send := exec.Command(wormhole, append(append([]string(nil), args...), "send", "--hide-progress", "--code", code, src)...)
		recv := exec.Command(wormhole, append(append([]string(nil), args...), "receive", "--hide-progress", "--accept-file",
			"--output-file", filepath.Join(to, filepath.Base(src)), code)...)
		return pair(ctx, send, recv, "Wormhole code is")
	}}
}

// freePortRun is the first of n consecutive TCP ports free on loopback now.
func freePortRun(t *testing.T, n int) int {
	t.Helper()
	for base := 20000 + os.Getpid()%20000; base < 65000; base += 97 {
		ok := true
		var ls []net.Listener
		for i := range n {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no run of free ports")
	return 0
}
