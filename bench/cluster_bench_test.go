package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
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

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/redisstore"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/redistest"
	"github.com/chatx/chatx/ports"
)

// The registry scaled out: the same figures for one node on the embedded
// store and for three nodes sharing one redis-server (docs/scaling.md).
// CHATX_CLUSTER_WATCHERS sets the watchers per node (default 5,000: three
// nodes' 15,000 server-side connections are what fits under this
// machine's 20,000-descriptor hard limit next to the benchmark's own).

func clusterWatchersPerNode() int {
	if n, err := strconv.Atoi(os.Getenv("CHATX_CLUSTER_WATCHERS")); err == nil && n > 0 {
		return n
	}
	return 5000
}

func raiseFiles(want uint64) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	lim.Cur = min(max(lim.Cur, want), lim.Max)
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

type benchNode struct {
	reg *chatx.RegistryServer
	url string
}

// startBenchNodes starts one node on the file store (redisURL "") or n
// nodes on Redis.
func startBenchNodes(b *testing.B, n int, redisURL string) []benchNode {
	var out []benchNode
	for range n {
		data := registry.DataDir(b.TempDir())
		cfg := chatx.RegistryConfig{
			Server: registry.ServerConfig{Listen: "127.0.0.1:0", Data: data, NoSTUN: true, MaxConns: 60_000,
				ChallengeRate: registry.Rate{PerSecond: 1e6, Burst: 1e6}, RegisterRate: registry.Rate{PerSecond: 1e6, Burst: 1e6}},
			Data:    data,
			Relay:   relay.Config{Disabled: true},
			Service: app.RegistryOptions{MaxWatchers: 100_000},
			Redis:   redisstore.Config{URL: redisstore.URL(redisURL)},
		}
		init := chatx.InitRegistry
		if redisURL != "" {
			init = chatx.InitSharedRegistry
		}
		reg, cleanup, err := init(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = reg.Server.Serve(ctx) }()
		b.Cleanup(func() { cancel(); <-done; cleanup() })
		out = append(out, benchNode{reg: reg, url: string(reg.Server.URL())})
	}
	return out
}

func benchIdentity(b *testing.B, name string) domain.LocalIdentity {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	me, err := domain.NewLocalIdentity(domain.MustUsername(name), priv)
	if err != nil {
		b.Fatal(err)
	}
	return me
}

func register(ctx context.Context, b *testing.B, svc ports.RegistryService, me domain.LocalIdentity, eps domain.Endpoints) {
	ch, err := svc.Challenge(ctx)
	if err != nil {
		b.Fatal(err)
	}
	p := domain.RegistryProof{Action: domain.ActionRegister, Name: me.Name(), Key: me.PublicKey(), Challenge: ch, Endpoints: eps}
	if _, err := svc.Register(ctx, ports.RegisterRequest{Proof: p, Signature: p.Sign(me), ObservedHost: "127.0.0.1"}); err != nil {
		b.Fatal(err)
	}
}

func layouts() []struct {
	name  string
	nodes int
	redis bool
} {
	return []struct {
		name  string
		nodes int
		redis bool
	}{{"1-node-file", 1, false}, {"3-nodes-redis", 3, true}}
}

// BenchmarkClusterLookup: GET /v1/users/{name} over HTTPS from 64
// goroutines spread over the nodes, 1,000 accounts.
func BenchmarkClusterLookup(b *testing.B) {
	for _, l := range layouts() {
		b.Run(l.name, func(b *testing.B) {
			url := ""
			if l.redis {
				url = redistest.Start(b, redistest.Options{}).URL(0)
			}
			nodes := startBenchNodes(b, l.nodes, url)
			ctx := context.Background()
			const users = 1000
			for i := range users {
				register(ctx, b, nodes[i%len(nodes)].reg.Service, benchIdentity(b, fmt.Sprintf("user%04d", i)), domain.Endpoints{})
			}
			clients := make([]*http.Client, len(nodes))
			bases := make([]string, len(nodes))
			for i, n := range nodes {
				clients[i] = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}}
				bases[i] = strings.SplitN(n.url, "/#", 2)[0]
			}
			var seq atomic.Int64
			b.SetParallelism(32)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(seq.Add(1))
					resp, err := clients[i%len(nodes)].Get(fmt.Sprintf("%s/v1/users/user%04d", bases[i%len(nodes)], i%users))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("lookup: %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lookups/s")
		})
	}
}

// BenchmarkClusterRegister: registrations through the service of one
// node, and the Redis commands each costs (all nodes together, including
// their followers' XREADs of the event it publishes).
func BenchmarkClusterRegister(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	nodes := startBenchNodes(b, 3, srv.URL(0))
	ctx := context.Background()
	ids := make([]domain.LocalIdentity, b.N)
	for i := range ids {
		ids[i] = benchIdentity(b, fmt.Sprintf("reg%07d", i))
	}
	before, err := srv.CommandsProcessed()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		register(ctx, b, nodes[i%3].reg.Service, ids[i], domain.Endpoints{Link: []string{"127.0.0.1:7000"}})
	}
	elapsed := time.Since(start)
	b.StopTimer()
	after, err := srv.CommandsProcessed()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "registrations/s")
	// The two commands of each INFO above are not the registrations'.
	b.ReportMetric(float64(after-before-1)/float64(b.N), "redis-cmds/registration")
}

// BenchmarkClusterFanout: a presence change made at node 1 reaching every
// watcher, the watchers spread evenly over the nodes (a helper process
// holds their connections), and the server memory per watcher.
func BenchmarkClusterFanout(b *testing.B) {
	per := clusterWatchersPerNode()
	for _, l := range layouts() {
		b.Run(fmt.Sprintf("%s/watchers=%d", l.name, per*l.nodes), func(b *testing.B) {
			n := per * l.nodes
			if lim := raiseFiles(uint64(n + 2000)); lim < uint64(n+500) {
				b.Skipf("RLIMIT_NOFILE %d is too low for %d watchers", lim, n)
			}
			url := ""
			if l.redis {
				url = redistest.Start(b, redistest.Options{}).URL(0)
			}
			runtime.GC()
			var m0 runtime.MemStats
			runtime.ReadMemStats(&m0)
			nodes := startBenchNodes(b, l.nodes, url)
			var addrs []string
			for _, nd := range nodes {
				addrs = append(addrs, nd.reg.Server.Addr().String())
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperClusterWatchers$")
			cmd.Env = append(os.Environ(), "CHATX_CW_ADDRS="+strings.Join(addrs, ","), "CHATX_CW_N="+strconv.Itoa(n), "CHATX_CW_ITERS="+strconv.Itoa(b.N))
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
					if l := lines.Text(); strings.HasPrefix(l, prefix) {
						return l
					} else if strings.HasPrefix(l, "error ") {
						b.Fatalf("watchers: %s", l)
					}
				}
				b.Fatalf("watchers ended before %q", prefix)
				return ""
			}
			expect("ready")
			deadline := time.Now().Add(3 * time.Minute)
			for {
				var open int64
				for _, nd := range nodes {
					open += nd.reg.Server.Streams()
				}
				if open == int64(n) {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d streams open", open, n)
				}
				time.Sleep(100 * time.Millisecond)
			}
			runtime.GC()
			var m1 runtime.MemStats
			runtime.ReadMemStats(&m1)
			perWatcher := float64((m1.HeapInuse+m1.StackInuse)-(m0.HeapInuse+m0.StackInuse)) / float64(n)
			target := benchIdentity(b, "fanout-target")
			ctx := context.Background()
			b.ResetTimer()
			for it := 1; it <= b.N; it++ {
				fmt.Fprintf(stdin, "t %d %d\n", it, time.Now().UnixNano())
				register(ctx, b, nodes[0].reg.Service, target, domain.Endpoints{Link: []string{fmt.Sprintf("10.%d.%d.%d:7000", it>>16&255, it>>8&255, it&255)}})
				expect(fmt.Sprintf("got %d ", it))
			}
			b.StopTimer()
			stdin.Close()
			var p50, p99, pmax, count int64
			if _, err := fmt.Sscanf(expect("lat "), "lat %d %d %d %d", &p50, &p99, &pmax, &count); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(p50)/1e6, "p50-ms")
			b.ReportMetric(float64(p99)/1e6, "p99-ms")
			b.ReportMetric(float64(pmax)/1e6, "max-ms")
			b.ReportMetric(perWatcher, "server-B/watcher")
		})
	}
}

// TestHelperClusterWatchers is BenchmarkClusterFanout's watcher process:
// CHATX_CW_N plain HTTP/1.1 presence streams spread over CHATX_CW_ADDRS;
// it prints "ready", reads "t I T0" lines (change I made at T0) on stdin,
// prints "got I " once every stream saw change I, and at EOF "lat p50 p99
// max count" in nanoseconds.
func TestHelperClusterWatchers(t *testing.T) {
	addrsEnv := os.Getenv("CHATX_CW_ADDRS")
	if addrsEnv == "" {
		t.Skip("helper process of BenchmarkClusterFanout only")
	}
	addrs := strings.Split(addrsEnv, ",")
	n, _ := strconv.Atoi(os.Getenv("CHATX_CW_N"))
	iters, _ := strconv.Atoi(os.Getenv("CHATX_CW_ITERS"))
	raiseFiles(uint64(n + 500))
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	conns := make([]*tls.Conn, n)
	readers := make([]*bufio.Reader, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var err error
			for try := 0; try < 6; try++ {
				if conns[i], readers[i], err = dialStream(addrs[i%len(addrs)]); err == nil {
					return
				}
				time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
			}
			say("error %v", err)
			os.Exit(2)
		})
	}
	wg.Wait()
	starts := make([]atomic.Int64, iters+2)
	received := make([]atomic.Int64, iters+2)
	lat := make([][]time.Duration, n)
	marker := []byte(`"link":["10.`)
	for i := range n {
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
				var a, bb, c int
				if _, err := fmt.Sscanf(string(line[j+len(marker):]), "%d.%d.%d:", &a, &bb, &c); err != nil {
					continue
				}
				it := a<<16 | bb<<8 | c
				if it < 1 || it > iters {
					continue
				}
				if t0 := starts[it].Load(); t0 > 0 {
					lat[i] = append(lat[i], time.Duration(time.Now().UnixNano()-t0))
				}
				if received[it].Add(1) == int64(n) {
					say("got %d ", it)
				}
			}
		})
	}
	say("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var it int
		var t0 int64
		if _, err := fmt.Sscanf(sc.Text(), "t %d %d", &it, &t0); err == nil && it >= 1 && it <= iters {
			starts[it].Store(t0)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
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

func dialStream(addr string) (*tls.Conn, *bufio.Reader, error) {
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, nil, err
	}
	if _, err := fmt.Fprintf(c, "GET /v1/events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", addr); err != nil {
		c.Close()
		return nil, nil, err
	}
	r := bufio.NewReaderSize(c, 4096)
	status, err := r.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		c.Close()
		return nil, nil, fmt.Errorf("stream at %s: %q %v", addr, status, err)
	}
	return c, r, nil
}
