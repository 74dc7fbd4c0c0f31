package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// raiseNoFile lifts RLIMIT_NOFILE so thousands of loopback connections
// (both ends in this process) fit; it returns the soft limit in force.
func raiseNoFile(want uint64) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur >= want {
		return lim.Cur
	}
	try := syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &try); err == nil {
		return want
	}
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRate reports ops per wall second and CPU per op (both ends of the
// connection run in this process, so CPU/op is the whole cost of one
// request on this machine; 2 cores / CPU-per-op is what an idle machine
// could sustain, which matters when other work loads the machine).
func reportRate(b *testing.B, unit string, start time.Time, cpu0 time.Duration) {
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), unit)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

func benchServer(b *testing.B) *testServer {
	cfg := fastConfig(b.TempDir(), "")
	cfg.MaxConns = 60_000
	return startServer(b, cfg, app.RegistryOptions{MaxWatchers: 100_000})
}

// BenchmarkLookup measures GET /v1/users/{name} over HTTPS with 1,000
// accounts, from 8 clients in parallel.
func BenchmarkLookup(b *testing.B) {
	ts := benchServer(b)
	ctx := context.Background()
	const users = 1000
	names := make([]domain.Username, users)
	for i := range users {
		id := newLocal(b, fmt.Sprintf("look-%d", i+5000))
		names[i] = id.Name()
		ch, err := ts.svc.Challenge(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p := domain.RegistryProof{Action: domain.ActionRegister, Name: id.Name(), Key: id.PublicKey(), Challenge: ch,
			Endpoints: domain.Endpoints{Link: []string{"10.0.0.1:7000"}}}
		if _, err := ts.svc.Register(ctx, ports.RegisterRequest{Proof: p, Signature: p.Sign(id), ObservedHost: "127.0.0.1"}); err != nil {
			b.Fatal(err)
		}
	}
	clients := make(chan *registry.Client, 64)
	for range 64 {
		clients <- newClient(b, ts.url, "")
	}
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		c := <-clients
		for pb.Next() {
			i := next.Add(1)
			if _, err := c.Lookup(ctx, names[i%users]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, "lookups/s", start, cpu0)
}

// BenchmarkRegister measures POST /v1/challenges + signed PUT
// /v1/users/{name}/presence over HTTPS from 4 goroutines: "new" binds a new
// name each time (an fsync of the account log), "again" logs an existing
// name in again. Raw HTTP, so the client's stream reconnect is not counted.
func BenchmarkRegister(b *testing.B) {
	for _, mode := range []string{"new", "again"} {
		b.Run(mode, func(b *testing.B) {
			ts := benchServer(b)
			keys := make([]domain.LocalIdentity, 64)
			for i := range keys {
				keys[i] = newLocal(b, fmt.Sprintf("again-%d", i+100))
			}
			hc, base := rawClient(ts)
			hc.Transport.(*http.Transport).ForceAttemptHTTP2 = true
			var next atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					id := keys[i%int64(len(keys))]
					if mode == "new" {
						id, _ = domain.NewLocalIdentity(domain.MustUsername(fmt.Sprintf("new-%d", i+100000)), id.PrivateKey())
					}
					if err := rawRegister(hc, base, id); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRate(b, "registrations/s", start, cpu0)
		})
	}
}

func rawRegister(hc *http.Client, base string, id domain.LocalIdentity) error {
	resp, err := hc.Post(base+"/v1/challenges", "application/json", nil)
	if err != nil {
		return err
	}
	var cr struct{ Challenge string }
	err = json.NewDecoder(resp.Body).Decode(&cr)
	resp.Body.Close()
	if err != nil {
		return err
	}
	ch, err := base64.StdEncoding.DecodeString(cr.Challenge)
	if err != nil {
		return err
	}
	p := domain.RegistryProof{Action: domain.ActionRegister, Name: id.Name(), Key: id.PublicKey(), Challenge: ch,
		Endpoints: domain.Endpoints{Link: []string{"10.0.0.1:7000"}}}
	body, _ := json.Marshal(map[string]any{
		"key":       base64.StdEncoding.EncodeToString(id.PublicKey()),
		"challenge": cr.Challenge,
		"endpoints": map[string][]string{"link": {"10.0.0.1:7000"}, "file": {}},
		"signature": base64.StdEncoding.EncodeToString(p.Sign(id)),
	})
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/users/"+id.Name().String()+"/presence", bytes.NewReader(body))
	resp, err = hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("register %s: %s", id.Name(), resp.Status)
	}
	return nil
}

// dialWatcher opens a minimal presence-stream reader: one TLS connection
// and a 4 KiB reader (one goroutine reads it), like a thin client.
func dialWatcher(addr string) (*tls.Conn, *bufio.Reader, error) {
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.Write([]byte("GET /v1/events HTTP/1.1\r\nHost: registry\r\nAccept: text/event-stream\r\n\r\n")); err != nil {
		c.Close()
		return nil, nil, err
	}
	r := bufio.NewReaderSize(c, 4096)
	for { // headers, then the preamble up to "event: synced"
		line, err := r.ReadSlice('\n')
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		if bytes.HasPrefix(line, []byte("event: synced")) {
			break
		}
	}
	return c, r, nil
}

// BenchmarkFanout measures how long one presence change takes to reach
// every watcher: from the registry service accepting a registration to the
// event read from each watcher's TLS stream. The watchers run in a child
// process (this test binary re-executed), so both file-descriptor limits
// fit and the memory per watcher is the server's alone. Each op is one
// change, awaited by all watchers before the next.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) {
			if lim := raiseNoFile(uint64(n + 2000)); lim < uint64(n+200) {
				b.Skipf("RLIMIT_NOFILE %d is too low for %d watchers", lim, n)
			}
			ts := benchServer(b)
			ctx := context.Background()
			target := newLocal(b, "fanout-target")

			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)

			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFanoutWatchers$")
			cmd.Env = append(os.Environ(), "CHATX_FANOUT_ADDR="+ts.srv.Addr().String(),
				"CHATX_FANOUT_N="+strconv.Itoa(n), "CHATX_FANOUT_ITERS="+strconv.Itoa(b.N))
			cmd.Stderr = os.Stderr
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			lines := bufio.NewScanner(stdout)
			expect := func(prefix string) string {
				for lines.Scan() {
					l := lines.Text()
					if strings.HasPrefix(l, prefix) {
						return l
					}
					if strings.HasPrefix(l, "error ") {
						b.Fatalf("watcher process: %s", l)
					}
				}
				b.Fatalf("watcher process ended before %q: %v", prefix, lines.Err())
				return ""
			}
			expect("ready")
			waitFor(b, time.Minute, "every watcher subscribed", func() bool { return ts.srv.Streams() == int64(n) })
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			perWatcher := float64((after.HeapInuse+after.StackInuse)-(before.HeapInuse+before.StackInuse)) / float64(n)

			b.ResetTimer()
			cpu0 := cpuTime()
			for it := 1; it <= b.N; it++ {
				ch, err := ts.svc.Challenge(ctx)
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				// The registry publishes only addresses it can justify (a DNS
				// name never), so the change is told by a private address
				// naming the iteration, and its start time goes to the
				// watcher process on its stdin.
				if _, err := fmt.Fprintf(stdin, "t0 %d %d\n", it, t0.UnixNano()); err != nil {
					b.Fatal(err)
				}
				p := domain.RegistryProof{Action: domain.ActionRegister, Name: target.Name(), Key: target.PublicKey(), Challenge: ch,
					Endpoints: domain.Endpoints{Link: []string{fanoutEndpoint(it)}}}
				sig := p.Sign(target)
				if _, err := ts.svc.Register(ctx, ports.RegisterRequest{Proof: p, Signature: sig}); err != nil {
					b.Fatal(err)
				}
				expect(fmt.Sprintf("got %d ", it))
			}
			b.StopTimer()
			serverCPU := cpuTime() - cpu0
			stdin.Close()
			var p50, p99, pmax, count int64
			if _, err := fmt.Sscanf(expect("lat "), "lat %d %d %d %d", &p50, &p99, &pmax, &count); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(p50)/1e6, "p50-ms")
			b.ReportMetric(float64(p99)/1e6, "p99-ms")
			b.ReportMetric(float64(pmax)/1e6, "max-ms")
			b.ReportMetric(perWatcher, "server-B/watcher")
			b.ReportMetric(float64(serverCPU.Nanoseconds())/float64(b.N)/float64(n)/1e3, "server-cpu-µs/delivery")
		})
	}
}

// TestHelperFanoutWatchers is the watcher process of BenchmarkFanout: it
// opens CHATX_FANOUT_N thin presence streams, prints "ready", then "got I "
// once every stream saw change I, and at EOF on stdin the latency summary
// "lat p50 p99 max count" in nanoseconds.
func TestHelperFanoutWatchers(t *testing.T) {
	addr := os.Getenv("CHATX_FANOUT_ADDR")
	if addr == "" {
		t.Skip("helper process only")
	}
	n, _ := strconv.Atoi(os.Getenv("CHATX_FANOUT_N"))
	iters, _ := strconv.Atoi(os.Getenv("CHATX_FANOUT_ITERS"))
	raiseNoFile(uint64(n + 500))
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		outMu.Unlock()
	}
	conns := make([]*tls.Conn, n)
	readers := make([]*bufio.Reader, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, r, err := dialWatcher(addr)
			for try := 0; err != nil && try < 5; try++ {
				time.Sleep(time.Duration(try+1) * 100 * time.Millisecond) // a loaded server may reset a handshake
				c, r, err = dialWatcher(addr)
			}
			if err != nil {
				say("error %v", err)
				os.Exit(2)
			}
			conns[i], readers[i] = c, r
		})
	}
	wg.Wait()
	received := make([]atomic.Int64, iters+1)
	arrived := make([][]time.Time, n) // per watcher, when it read each change
	marker := []byte(`"link":["`)
	for i := range n {
		arrived[i] = make([]time.Time, iters+1)
		wg.Go(func() {
			r := readers[i]
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return
				}
				j := bytes.Index(line, marker)
				if j < 0 {
					continue
				}
				rest := line[j+len(marker):]
				k := bytes.IndexByte(rest, '"')
				if k < 0 {
					continue
				}
				it := fanoutIteration(string(rest[:k]))
				if it < 1 || it > iters || !arrived[i][it].IsZero() {
					continue
				}
				arrived[i][it] = time.Now()
				if received[it].Add(1) == int64(n) {
					say("got %d ", it)
				}
			}
		})
	}
	say("ready")
	started := make([]int64, iters+1) // the parent's t0 of each change
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var it int
		var t0 int64
		if _, err := fmt.Sscanf(in.Text(), "t0 %d %d", &it, &t0); err == nil && it >= 1 && it <= iters {
			started[it] = t0
		}
	}
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	lat := make([][]time.Duration, n)
	for i := range n {
		for it := 1; it <= iters; it++ {
			if at := arrived[i][it]; !at.IsZero() && started[it] != 0 {
				lat[i] = append(lat[i], time.Duration(at.UnixNano()-started[it]))
			}
		}
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) == 0 {
		say("lat 0 0 0 0")
		return
	}
	say("lat %d %d %d %d", all[len(all)/2], all[len(all)*99/100], all[len(all)-1], len(all))
}

// fanoutEndpoint names iteration it (1 ≤ it < 2^24) by a private address,
// 10.a.b.c:7000, which the registry publishes as it is.
func fanoutEndpoint(it int) string {
	return fmt.Sprintf("10.%d.%d.%d:7000", it>>16&0xff, it>>8&0xff, it&0xff)
}

// fanoutIteration is the iteration a fanoutEndpoint names, or 0.
func fanoutIteration(endpoint string) int {
	ap, err := netip.ParseAddrPort(endpoint)
	if err != nil || !ap.Addr().Is4() {
		return 0
	}
	a := ap.Addr().As4()
	if a[0] != 10 {
		return 0
	}
	return int(a[1])<<16 | int(a[2])<<8 | int(a[3])
}
