package main

// The two-process CPU comparison (-split): every run puts the sender and the
// receiver in processes of their own, so each side's CPU seconds (user +
// system, getrusage in the child, from just before its first byte to its
// last) are counted apart. Rounds interleave chatx's Send (diskfile
// receiver: SHA-256 + write to disk with write-back, fsync, rename) with a
// bare quic-go single-stream copy (the same windows, memory to memory); the
// floors measured in the parent show what hashing and the disk cost alone.
//
//	go run ./adapters/udp/internal/filebench -split -size 1GiB -repeat 4

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/adapters/udp/internal/diskfile"
	"github.com/chatx/chatx/domain"
)

var (
	splitFlag  = flag.Bool("split", false, "run the two-process CPU comparison (chatx Send vs bare quic-go, each side its own process)")
	splitChild = flag.String("split-child", "", "internal: chatx-recv, chatx-send, bare-recv or bare-send")
	splitArg   = flag.String("split-arg", "", "internal: the child's parameters")
	// splitAltBuffer adds a third kind of run: chatx with another buffer size.
	splitAltBuffer = flag.Int("split-alt-buffer", 0, "with -split: also run chatx with this udp.Config.BufferSize, interleaved")
	splitAltEnv    = flag.String("split-alt-env", "", "with -split: also run chatx with these environment variables (K=V,K=V), interleaved")
)

// sideCost is what one child reports: CPU and wall time of its side.
type sideCost struct {
	cpu, wall time.Duration
	// the sender's connection counters: packets and bytes sent, lost
	packets, bytes, lost uint64
}

// splitRun is the -split comparison.
func splitRun(size int64, dir, cpuprofile string, repeat int) error {
	work, err := os.MkdirTemp(dir, "filebench-split-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "source.bin")
	fmt.Printf("machine: %s; load before: %s\n", cpuModel(), loadAvg())
	sum, err := diskfile.WriteRandom(src, size, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	gib := float64(size) / (1 << 30)
	type runs struct{ send, recv, wall []time.Duration }
	variants := []splitVariant{{"chatx", "chatx", bufferSize, nil}, {"bare", "bare", 0, nil}}
	if *splitAltBuffer > 0 || *splitAltEnv != "" {
		alt := splitVariant{"chatx-alt", "chatx", bufferSize, nil}
		if *splitAltBuffer > 0 {
			alt.buffer = *splitAltBuffer
		}
		if *splitAltEnv != "" {
			alt.env = strings.Split(*splitAltEnv, ",")
		}
		fmt.Printf("chatx-alt: buffer %d, environment %q\n", alt.buffer, alt.env)
		variants = append(variants, alt)
	}
	got := make([]runs, len(variants))
	for round := range repeat {
		prof := ""
		if cpuprofile != "" && round == 0 {
			prof = cpuprofile
		}
		for k := range variants { // rotate the order from round to round
			i := (k + round) % len(variants)
			v := variants[i]
			s, r, err := splitPair(v, src, sum, size, work, prof)
			if err != nil {
				return fmt.Errorf("round %d %s: %w", round+1, v.name, err)
			}
			g := &got[i]
			g.send, g.recv, g.wall = append(g.send, s.cpu), append(g.recv, r.cpu), append(g.wall, s.wall)
			fmt.Printf("round %d %-11s: %4.0f MB/s, CPU s/GiB sender %.2f receiver %.2f; sender: %d packets of %.0f bytes, %d lost\n", round+1, v.name,
				mbs(size, s.wall), s.cpu.Seconds()/gib, r.cpu.Seconds()/gib, s.packets, float64(s.bytes)/float64(max(s.packets, 1)), s.lost)
		}
	}
	type med struct{ mbs, send, recv float64 }
	meds := make([]med, len(variants))
	fmt.Printf("\n| run (%s, loopback, two processes, median of %d) | MB/s | CPU s/GiB sender | CPU s/GiB receiver | both |\n|---|---|---|---|---|\n", human(size), repeat)
	for i, v := range variants {
		m := med{mbs(size, median(got[i].wall)), median(got[i].send).Seconds() / gib, median(got[i].recv).Seconds() / gib}
		meds[i] = m
		what := "bare quic-go, one stream, memory to memory"
		if v.role == "chatx" {
			what = v.name + " Send → verified file (chunked BLAKE3 both sides, disk)"
		}
		fmt.Printf("| %s | %.0f | %.2f | %.2f | %.2f |\n", what, m.mbs, m.send, m.recv, m.send+m.recv)
	}
	b := meds[1]
	for i, v := range variants {
		if v.role == "chatx" {
			m := meds[i]
			fmt.Printf("| ratio %s/bare | %.2f | %.2f | %.2f | %.2f |\n", v.name, m.mbs/b.mbs, m.send/b.send, m.recv/b.recv, (m.send+m.recv)/(b.send+b.recv))
		}
	}

	// The floors: what the bytes cost us besides QUIC, measured alone.
	floors := append([]floor{
		{"SHA-256 (domain.FileHasher) of bytes in memory", func() error { return hashMemory(domain.FileHashSHA256, size) }},
		{"BLAKE3 (domain.FileHasher) of bytes in memory", func() error { return hashMemory(domain.FileHashBLAKE3, size) }},
		{"pread of the source from the page cache, 256 KiB reads", func() error { return readFile(src) }},
		{"write to disk as the receiver does: 256 KiB writes, 8 MiB write-back + drop, fsync", func() error { return writeFile(filepath.Join(work, "floor.bin"), size) }},
	}, otherWriteFloors(work, size)...)
	fmt.Printf("\n| floor (this process, %s) | CPU s/GiB | MB/s |\n|---|---|---|\n", human(size))
	for _, f := range floors {
		t0 := time.Now()
		c, err := cpuOf(f.run)
		if err != nil {
			return fmt.Errorf("floor %q: %w", f.name, err)
		}
		fmt.Printf("| %s | %.2f | %.0f |\n", f.name, c.Seconds()/gib, mbs(size, time.Since(t0)))
	}
	fmt.Printf("load after: %s\n", loadAvg())
	return nil
}

// splitPair runs one transfer with its sender and receiver as two children.
// splitVariant is one kind of run: role chatx or bare, and the buffer size
// of chatx's copy loops (0: the default).
type splitVariant struct {
	name, role string
	buffer     int
	env        []string // added to both children's environment
}

func splitPair(v splitVariant, src string, sum diskfile.Sums, size int64, work, prof string) (send, recv sideCost, err error) {
	recvDir := filepath.Join(work, "recv")
	if err := os.MkdirAll(recvDir, 0o700); err != nil {
		return send, recv, err
	}
	id := domain.NewTransferID()
	rprof, sprof := "", ""
	if prof != "" {
		rprof, sprof = prof+"."+v.name+"-recv", prof+"."+v.name+"-send"
	}
	buf := "-buffer=" + strconv.Itoa(v.buffer)
	rc := exec.Command(os.Args[0], buf, "-split-child", v.role+"-recv",
		"-split-arg", strings.Join([]string{strconv.FormatInt(size, 10), id.String(), sum.String(), recvDir, rprof}, ","))
	rc.Stderr = os.Stderr
	rc.Env = append(os.Environ(), v.env...)
	out, err := rc.StdoutPipe()
	if err != nil {
		return send, recv, err
	}
	if err := rc.Start(); err != nil {
		return send, recv, err
	}
	defer func() { _ = rc.Wait() }()
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		_ = rc.Process.Kill()
		return send, recv, errors.New("receiver said nothing")
	}
	addr, ok := strings.CutPrefix(lines.Text(), "ADDR ")
	if !ok {
		_ = rc.Process.Kill()
		return send, recv, fmt.Errorf("receiver: %q", lines.Text())
	}
	sc := exec.Command(os.Args[0], buf, "-split-child", v.role+"-send",
		"-split-arg", strings.Join([]string{strconv.FormatInt(size, 10), id.String(), addr, src, sprof}, ","))
	sc.Env = append(os.Environ(), v.env...)
	sout, err := sc.Output()
	if err != nil {
		_ = rc.Process.Kill()
		return send, recv, fmt.Errorf("sender: %w", err)
	}
	if send, err = parseCost(strings.TrimSpace(string(sout))); err != nil {
		return send, recv, err
	}
	if !lines.Scan() {
		return send, recv, errors.New("receiver ended without its cost")
	}
	recv, err = parseCost(lines.Text())
	return send, recv, err
}

func parseCost(s string) (sideCost, error) {
	var cpu, wall int64
	var c sideCost
	if _, err := fmt.Sscanf(s, "COST %d %d %d %d %d", &cpu, &wall, &c.packets, &c.bytes, &c.lost); err != nil {
		return sideCost{}, fmt.Errorf("child answered %q: %w", s, err)
	}
	c.cpu, c.wall = time.Duration(cpu), time.Duration(wall)
	return c, nil
}

// splitChildRun is one side of one transfer; it prints COST cpu wall (ns).
func splitChildRun(role, arg string) error {
	a := strings.Split(arg, ",")
	if len(a) != 5 {
		return fmt.Errorf("split child: want 5 parameters, got %q", arg)
	}
	size, err := strconv.ParseInt(a[0], 10, 64)
	if err != nil {
		return err
	}
	id, err := domain.ParseTransferID(a[1])
	if err != nil {
		return err
	}
	if a[4] != "" {
		f, err := os.Create(a[4])
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	var c sideCost
	switch role {
	case "chatx-recv":
		c, err = chatxRecv(size, id, a[2], a[3])
	case "chatx-send":
		c, err = chatxSend(size, id, a[2], a[3])
	case "bare-recv":
		c, err = bareRecv(size)
	case "bare-send":
		c, err = bareSend(size, a[2])
	default:
		err = fmt.Errorf("split child: unknown role %q", role)
	}
	if err != nil {
		return err
	}
	fmt.Printf("COST %d %d %d %d %d\n", c.cpu.Nanoseconds(), c.wall.Nanoseconds(), c.packets, c.bytes, c.lost)
	return nil
}

// fixedIdentity derives the same key in every process.
func fixedIdentity(name string) (domain.LocalIdentity, error) {
	seed := sha256.Sum256([]byte("filebench " + name))
	return domain.NewLocalIdentity(domain.MustUsername(name), ed25519.NewKeyFromSeed(seed[:]))
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// statsHandler keeps the uint64 attributes of the transport's "file sent"
// debug record (its connection counters) and drops every other record.
type statsHandler struct {
	mu sync.Mutex
	v  map[string]uint64
}

func (h *statsHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *statsHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *statsHandler) WithGroup(string) slog.Handler            { return h }
func (h *statsHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "file sent" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.v = make(map[string]uint64)
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindUint64 {
			h.v[a.Key] = a.Value.Uint64()
		}
		return true
	})
	return nil
}

func (h *statsHandler) get(k string) uint64 { h.mu.Lock(); defer h.mu.Unlock(); return h.v[k] }

func chatxRecv(size int64, id domain.TransferID, sumHex, dir string) (sideCost, error) {
	sum, err := diskfile.ParseSums(sumHex)
	if err != nil {
		return sideCost{}, err
	}
	bob, err := fixedIdentity("bob")
	if err != nil {
		return sideCost{}, err
	}
	tr, closeT, err := udp.NewTransport(bob, acceptAll{}, nil, udp.Config{ListenAddr: "127.0.0.1:0", BufferSize: bufferSize, NoTCPFiles: true}, quietLog())
	if err != nil {
		return sideCost{}, err
	}
	defer closeT()
	recv := diskfile.New(dir)
	e := recv.Expect(id, 0, "received-"+id.Short()+".bin", sum)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- tr.Serve(ctx, recv) }()
	defer func() { cancel(); <-served }()
	c0, t0 := cpuTime(), time.Now()
	fmt.Printf("ADDR %s\n", tr.Endpoints()[0])
	<-e.Finished()
	c := sideCost{cpu: cpuTime() - c0, wall: time.Since(t0)}
	s := e.Sessions()
	if len(s) == 0 || s[len(s)-1].Result != nil || s[len(s)-1].FinishErr != nil || s[len(s)-1].Written != size {
		return c, fmt.Errorf("receiver: file not verified: %+v", s)
	}
	return c, os.Remove(recv.Path(e))
}

func chatxSend(size int64, id domain.TransferID, addr, src string) (sideCost, error) {
	alice, err := fixedIdentity("alice")
	if err != nil {
		return sideCost{}, err
	}
	bob, err := fixedIdentity("bob")
	if err != nil {
		return sideCost{}, err
	}
	stats := &statsHandler{}
	tr, closeT, err := udp.NewTransport(alice, acceptAll{}, nil, udp.Config{ListenAddr: "127.0.0.1:0", BufferSize: bufferSize, NoTCPFiles: true}, slog.New(stats))
	if err != nil {
		return sideCost{}, err
	}
	defer closeT()
	f, err := diskfile.Open(src)
	if err != nil {
		return sideCost{}, err
	}
	defer f.Close()
	if f.Size() != size {
		return sideCost{}, fmt.Errorf("source has %d bytes, want %d", f.Size(), size)
	}
	peer := domain.Peer{Identity: bob.Identity, Endpoints: domain.Endpoints{File: []string{addr}}}
	c0, t0 := cpuTime(), time.Now()
	if err := tr.Send(context.Background(), peer, id, 0, f, nil); err != nil {
		return sideCost{}, err
	}
	c := sideCost{cpu: cpuTime() - c0, wall: time.Since(t0)}
	c.packets, c.bytes, c.lost = stats.get("conn_packets_sent"), stats.get("conn_bytes_sent"), stats.get("conn_packets_lost")
	return c, nil
}

// benchQUICConfig is the bare copy's config: adapters/udp's windows.
func benchQUICConfig() *quic.Config {
	return &quic.Config{
		InitialStreamReceiveWindow: 1 << 20, MaxStreamReceiveWindow: 16 << 20,
		InitialConnectionReceiveWindow: 2 << 20, MaxConnectionReceiveWindow: 48 << 20,
	}
}

func bareRecv(size int64) (sideCost, error) {
	cert, err := benchCert()
	if err != nil {
		return sideCost{}, err
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"}, MinVersion: tls.VersionTLS13}, benchQUICConfig())
	if err != nil {
		return sideCost{}, err
	}
	defer ln.Close()
	c0, t0 := cpuTime(), time.Now()
	fmt.Printf("ADDR %s\n", ln.Addr())
	conn, err := ln.Accept(context.Background())
	if err != nil {
		return sideCost{}, err
	}
	defer conn.CloseWithError(0, "")
	str, err := conn.AcceptStream(context.Background())
	if err != nil {
		return sideCost{}, err
	}
	n, err := io.CopyBuffer(io.Discard, str, make([]byte, 256<<10))
	if err == nil && n != size {
		err = fmt.Errorf("received %d of %d bytes", n, size)
	}
	if err != nil {
		return sideCost{}, err
	}
	_, _ = str.Write([]byte{0})
	_ = str.Close()
	c := sideCost{cpu: cpuTime() - c0, wall: time.Since(t0)}
	select { // the sender closes once it read the byte
	case <-conn.Context().Done():
	case <-time.After(5 * time.Second):
	}
	return c, nil
}

func bareSend(size int64, addr string) (sideCost, error) {
	ctx := context.Background()
	c0, t0 := cpuTime(), time.Now()
	conn, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}, MinVersion: tls.VersionTLS13}, benchQUICConfig())
	if err != nil {
		return sideCost{}, err
	}
	defer conn.CloseWithError(0, "")
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return sideCost{}, err
	}
	if err := writeN(str, size); err != nil {
		return sideCost{}, err
	}
	if err := str.Close(); err != nil {
		return sideCost{}, err
	}
	if _, err := io.ReadFull(str, make([]byte, 1)); err != nil {
		return sideCost{}, err
	}
	st := conn.ConnectionStats()
	return sideCost{cpu: cpuTime() - c0, wall: time.Since(t0), packets: st.PacketsSent, bytes: st.BytesSent, lost: st.PacketsLost}, nil
}

// floor is one cost measured alone.
type floor struct {
	name string
	run  func() error
}

func cpuOf(fn func() error) (time.Duration, error) {
	c0 := cpuTime()
	err := fn()
	return cpuTime() - c0, err
}

// hashMemory hashes size bytes of one 256 KiB buffer.
func hashMemory(alg domain.FileHashAlg, size int64) error {
	buf := make([]byte, 256<<10)
	h := domain.NewFileHasher(alg)
	for left := size; left > 0; left -= int64(len(buf)) {
		h.Write(buf[:min(int64(len(buf)), left)])
	}
	_ = h.Sum()
	return nil
}

func readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		off += int64(n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// writeFile writes size bytes as the diskfile receiver does, without hashing.
func writeFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var from, prevOff, prevN, off int64
	for off < size {
		n, err := f.Write(buf[:min(int64(len(buf)), size-off)])
		off += int64(n)
		if err != nil {
			_ = f.Close()
			return err
		}
		if off-from >= 8<<20 {
			_ = diskfile.StartWriteback(f, from, off-from)
			if prevN > 0 {
				_ = diskfile.SettleWriteback(f, prevOff, prevN)
			}
			prevOff, prevN, from = from, off-from, off
		}
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// splitMain runs -split, or one of its children.
func splitMain(sizeFlag, dir, cpuprofile string, repeat int) error {
	if *splitChild != "" {
		return splitChildRun(*splitChild, *splitArg)
	}
	size, err := parseSize(sizeFlag)
	if err != nil {
		return err
	}
	return splitRun(size, dir, cpuprofile, repeat)
}
