// Command filebench measures the QUIC file transport on loopback in one run:
// chatx's Send of a random file (encrypted, hashed with SHA-256 by the
// receiver and written to disk), a bare quic-go single-stream copy and a
// TCP+TLS 1.3 copy of the same number of bytes (no hashing, no disk), and
// the peak RSS of a whole transfer (sender and receiver in one process) for
// each size given to -rss, each in a child process.
//
//	go run ./adapters/udp/internal/filebench -size 1GiB -rss 1GiB,4GiB
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/adapters/udp/internal/diskfile"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var bufferSize int

func main() {
	sizeFlag := flag.String("size", "1GiB", "file size for the throughput runs")
	rssFlag := flag.String("rss", "1GiB,4GiB", "sizes for the peak-RSS runs (comma-separated, empty for none)")
	dir := flag.String("dir", os.TempDir(), "folder for the source and received files")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the chatx run to this file")
	child := flag.String("rss-child", "", "internal: run one peak-RSS transfer of this size")
	flag.IntVar(&bufferSize, "buffer", 0, "udp.Config.BufferSize for the chatx runs (0: the default)")
	repeat := flag.Int("repeat", 3, "rounds of the three throughput runs, interleaved; medians are reported")
	flag.Parse()
	if *splitChild != "" || *splitFlag {
		if err := splitMain(*sizeFlag, *dir, *cpuprofile, max(*repeat, 1)); err != nil {
			fmt.Fprintln(os.Stderr, "filebench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*sizeFlag, *rssFlag, *dir, *cpuprofile, *child, max(*repeat, 1)); err != nil {
		fmt.Fprintln(os.Stderr, "filebench:", err)
		os.Exit(1)
	}
}

func run(sizeFlag, rssFlag, dir, cpuprofile, child string, repeat int) error {
	if *stripeChild != "" {
		return runStripeChild(dir, cpuprofile)
	}
	if *stripesFlag != "" {
		size, err := parseSize(sizeFlag)
		if err != nil {
			return err
		}
		return stripeBench(size, dir, repeat)
	}
	if child != "" {
		size, err := parseSize(child)
		if err != nil {
			return err
		}
		return rssChild(size, dir)
	}
	size, err := parseSize(sizeFlag)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(dir, "filebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "source.bin")
	fmt.Printf("machine: %d CPUs, %s, %s\n", runtime.NumCPU(), cpuModel(), runtime.Version())
	fmt.Printf("generating %s of random data...\n", human(size))
	sum, err := diskfile.WriteRandom(src, size, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}

	var chatx, bare, tcp []time.Duration
	var chatxTCP, chatxCPU, chatxTCPCPU []time.Duration // the TCP file path; CPU of sender + receiver (one process)
	for round := range repeat {
		var stopProfile func()
		if cpuprofile != "" && round == 0 {
			f, err := os.Create(cpuprofile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			stopProfile = func() { pprof.StopCPUProfile(); _ = f.Close() }
		}
		c0 := cpuTime()
		d, err := chatxRun(src, sum, size, filepath.Join(work, "recv"), false, false)
		chatxCPU = append(chatxCPU, cpuTime()-c0)
		if stopProfile != nil {
			stopProfile()
		}
		if err != nil {
			return fmt.Errorf("chatx run: %w", err)
		}
		chatx = append(chatx, d)
		c0 = cpuTime()
		if d, err = chatxRun(src, sum, size, filepath.Join(work, "recv"), false, true); err != nil {
			return fmt.Errorf("chatx tcp run: %w", err)
		}
		chatxTCPCPU = append(chatxTCPCPU, cpuTime()-c0)
		chatxTCP = append(chatxTCP, d)
		fmt.Printf("round %d: chatx over the TCP file stream %.0f MB/s\n", round+1, mbs(size, d))
		if d, err = bareQUIC(size); err != nil {
			return fmt.Errorf("bare quic-go run: %w", err)
		}
		bare = append(bare, d)
		if d, err = tcpTLS(size); err != nil {
			return fmt.Errorf("tcp+tls run: %w", err)
		}
		tcp = append(tcp, d)
		fmt.Printf("round %d: chatx %.0f MB/s (of which Finish: fsync+rename %.2fs), bare quic-go %.0f MB/s, tcp+tls %.0f MB/s, chatx/bare %.2f\n", round+1,
			mbs(size, chatx[round]), lastFinish.Seconds(), mbs(size, bare[round]), mbs(size, d), bare[round].Seconds()/chatx[round].Seconds())
	}
	ratios := make([]time.Duration, repeat) // bare/chatx per round, scaled by 1e6
	for i := range repeat {
		ratios[i] = time.Duration(bare[i].Seconds() / chatx[i].Seconds() * 1e6)
	}
	fmt.Printf("median of the per-round ratios chatx/bare quic-go: %.2f\n", float64(median(ratios))/1e6)
	mb := median(bare)
	fmt.Printf("\n| run (%s, loopback, median of %d) | time | MB/s | ratio to bare quic-go |\n|---|---|---|---|\n", human(size), repeat)
	for _, r := range []struct {
		name string
		d    time.Duration
	}{{"chatx Send (TLS 1.3 over QUIC, SHA-256 + disk at the receiver)", median(chatx)}, {"bare quic-go single stream (same quic.Config, no hash, no disk)", mb}, {"TCP + TLS 1.3 (no hash, no disk)", median(tcp)}} {
		fmt.Printf("| %s | %.2fs | %.0f | %.2f |\n", r.name, r.d.Seconds(), mbs(size, r.d), mb.Seconds()/r.d.Seconds())
	}
	gib := float64(size) / (1 << 30)
	fmt.Printf("\n| chatx file path (%s, loopback, median of %d, same rounds) | MB/s | CPU s per GiB, sender + receiver |\n|---|---|---|\n", human(size), repeat)
	fmt.Printf("| udp (QUIC, Send) | %.0f | %.2f |\n", mbs(size, median(chatx)), median(chatxCPU).Seconds()/gib)
	fmt.Printf("| tcp (TLS 1.3 over TCP, SendTCP) | %.0f | %.2f |\n", mbs(size, median(chatxTCP)), median(chatxTCPCPU).Seconds()/gib)
	if err := os.Remove(src); err != nil {
		return err
	}

	if rssFlag != "" {
		fmt.Printf("\n| peak RSS run | size | VmHWM | time | MB/s |\n|---|---|---|---|---|\n")
		for _, s := range strings.Split(rssFlag, ",") {
			out, err := exec.Command(os.Args[0], "-rss-child", s, "-dir", work, "-buffer", strconv.Itoa(bufferSize)).CombinedOutput()
			if err != nil {
				return fmt.Errorf("rss child %s: %w: %s", s, err, out)
			}
			fmt.Print(string(out))
		}
	}
	return nil
}

func mbs(size int64, d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// chatxRun sends src between two transports in this process.
func chatxRun(src string, sum diskfile.Sums, size int64, recvDir string, discard, overTCP bool) (time.Duration, error) {
	if err := os.MkdirAll(recvDir, 0o700); err != nil {
		return 0, err
	}
	alice, err := identity("alice")
	if err != nil {
		return 0, err
	}
	bob, err := identity("bob")
	if err != nil {
		return 0, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := udp.Config{ListenAddr: "127.0.0.1:0", BufferSize: bufferSize}
	sender, closeS, err := udp.NewTransport(alice, acceptAll{}, nil, cfg, log)
	if err != nil {
		return 0, err
	}
	defer closeS()
	receiver, closeR, err := udp.NewTransport(bob, acceptAll{}, nil, cfg, log)
	if err != nil {
		return 0, err
	}
	defer closeR()
	recv := diskfile.New(recvDir)
	recv.Discard = discard
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- receiver.Serve(ctx, recv) }()
	defer func() { cancel(); <-served }()

	id := domain.NewTransferID()
	e := recv.Expect(id, 0, "received.bin", sum)
	f, err := diskfile.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	peer := domain.Peer{Identity: bob.Identity, Endpoints: domain.Endpoints{File: receiver.Endpoints()}}
	start := time.Now()
	send := sender.Send
	if overTCP {
		send = func(ctx context.Context, to domain.Peer, id domain.TransferID, i int, src ports.FileSource, p func(int64)) error {
			return sender.SendTCP(ctx, to, "127.0.0.1", id, i, src, p)
		}
	}
	if err := send(context.Background(), peer, id, 0, f, nil); err != nil {
		return 0, err
	}
	d := time.Since(start)
	<-e.Finished()
	if s := e.Sessions(); len(s) > 0 {
		lastFinish = s[len(s)-1].FinishTook
	}
	if !discard {
		_ = os.Remove(recv.Path(e))
	}
	return d, nil
}

// rssChild runs one transfer of a sparse file of size and prints its peak RSS.
func rssChild(size int64, dir string) error {
	work, err := os.MkdirTemp(dir, "rss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "sparse.bin")
	f, err := os.Create(src)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	sum, err := diskfile.HashFile(src)
	if err != nil {
		return err
	}
	d, err := chatxRun(src, sum, size, filepath.Join(work, "recv"), false, false)
	if err != nil {
		return err
	}
	hwm, err := vmHWM()
	if err != nil {
		return err
	}
	fmt.Printf("| chatx Send, sparse source, receiver hashes + writes to disk | %s | %.1f MiB | %.2fs | %.0f |\n",
		human(size), float64(hwm)/(1<<20), d.Seconds(), float64(size)/d.Seconds()/1e6)
	return nil
}

// bareQUIC copies size bytes on one quic-go stream: the transport's ceiling.
func bareQUIC(size int64) (time.Duration, error) {
	cert, err := benchCert()
	if err != nil {
		return 0, err
	}
	qconf := &quic.Config{
		InitialStreamReceiveWindow: 1 << 20, MaxStreamReceiveWindow: 16 << 20,
		InitialConnectionReceiveWindow: 2 << 20, MaxConnectionReceiveWindow: 48 << 20,
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"}, MinVersion: tls.VersionTLS13}, qconf)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			got <- err
			return
		}
		defer conn.CloseWithError(0, "")
		str, err := conn.AcceptStream(context.Background())
		if err != nil {
			got <- err
			return
		}
		n, err := io.CopyBuffer(io.Discard, str, make([]byte, 256<<10))
		if err == nil && n != size {
			err = fmt.Errorf("received %d of %d bytes", n, size)
		}
		_, _ = str.Write([]byte{0})
		_ = str.Close()
		got <- err
		<-conn.Context().Done() // the client closes once it read the byte
	}()
	ctx := context.Background()
	conn, err := quic.DialAddr(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}, MinVersion: tls.VersionTLS13}, qconf)
	if err != nil {
		return 0, err
	}
	defer conn.CloseWithError(0, "")
	if !gsoReported {
		gsoReported = true
		fmt.Printf("quic-go on this socket: GSO %v\n", conn.ConnectionState().GSO)
	}
	start := time.Now()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	if err := writeN(str, size); err != nil {
		return 0, err
	}
	if err := str.Close(); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(str, make([]byte, 1)); err != nil {
		return 0, err
	}
	d := time.Since(start)
	err = <-got
	_ = conn.CloseWithError(0, "")
	return d, err
}

var gsoReported bool

// lastFinish is how long the receiver's Finish (fsync, rename) took in the
// last chatx run; it is inside the chatx time.
var lastFinish time.Duration

// tcpTLS copies size bytes over TCP with TLS 1.3.
func tcpTLS(size int64) (time.Duration, error) {
	cert, err := benchCert()
	if err != nil {
		return 0, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		n, err := io.CopyBuffer(io.Discard, io.LimitReader(c, size), make([]byte, 256<<10))
		if err == nil && n != size {
			err = fmt.Errorf("received %d of %d bytes", n, size)
		}
		_, _ = c.Write([]byte{0})
		got <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	if err := writeN(c, size); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return 0, err
	}
	d := time.Since(start)
	return d, <-got
}

// writeN writes size random-looking bytes from one 256 KiB buffer.
func writeN(w io.Writer, size int64) error {
	buf := make([]byte, 256<<10)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

func benchCert() (tls.Certificate, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}

func identity(name string) (domain.LocalIdentity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return domain.LocalIdentity{}, err
	}
	return domain.NewLocalIdentity(domain.MustUsername(name), priv)
}

type acceptAll struct{}

func (acceptAll) VerifyPeer(context.Context, domain.Identity) error { return nil }

// vmHWM is the process's peak resident set size in bytes.
func vmHWM() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

// parseSize reads 1GiB, 512MiB, 64KiB or a byte count.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want e.g. 1GiB, 256MiB or bytes", s)
	}
	return n * mult, nil
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

// cpuTime is the user + system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
