package bench_test

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// BenchmarkFileTransfer measures the real receive path end to end: alice's
// Client.SendFile of a file of random bytes (CHATX_BENCH_FILE_MIB MiB,
// default 1024) until bob's client reports the transfer Completed, i.e. the
// file was streamed over QUIC (mutual TLS 1.3), hashed, written through
// os.Root into bob's downloads folder, fsynced, verified and renamed. Both
// clients are whole (chatx.InitClient: TCP link, SQLite profile, QUIC file
// transport, downloads on disk, an in-process HTTPS registry); bob accepts
// automatically.
//
// Every iteration is one round: a bare quic-go single-stream copy of the same
// number of bytes (the same quic.Config windows as adapters/udp, no hash, no
// disk: the transport's ceiling), then the chatx transfer, so load changes hit
// both alike. Reported per round and as medians:
//
//   - total-MB/s: SendFile called → Completed at bob (includes alice hashing
//     the file for the offer before SendFile returns);
//   - xfer-MB/s: SendFile returned (offer sent) → Completed at bob: answer,
//     stream, hash, write, fsync, rename;
//   - bare-MB/s: the bare quic-go copy;
//   - xfer/bare and total/bare: the medians of the per-round ratios;
//   - peak-RSS-MiB: the process's VmHWM at the end (both clients, the
//     registry and the bare copies together), so CHATX_BENCH_FILE_MIB=4096
//     shows whether memory grows with the file.
//
// CHATX_BENCH_CPUPROFILE=path writes a CPU profile of the first chatx round;
// CHATX_BENCH_FILE_PATH=auto|udp|tcp is alice's --file-path (default udp);
// CHATX_BENCH_FILE_STRIPES=N both clients' --file-stripes (default 0).
func BenchmarkFileTransfer(b *testing.B) {
	size := int64(1024) << 20
	if v, err := strconv.Atoi(os.Getenv("CHATX_BENCH_FILE_MIB")); err == nil && v > 0 {
		size = int64(v) << 20
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "random.bin")
	if err := writeRandomFile(src, size); err != nil {
		b.Fatal(err)
	}
	p := newFilesPair(b, dir)
	defer p.stop()
	ctx := context.Background()

	var totals, xfers, bares []time.Duration
	var xferRatio, totalRatio []float64
	b.ResetTimer()
	for i := range b.N {
		bare, err := bareQUICCopy(size)
		if err != nil {
			b.Fatalf("bare quic-go: %v", err)
		}
		stopProfile := func() {}
		if prof := os.Getenv("CHATX_BENCH_CPUPROFILE"); prof != "" && i == 0 {
			stopProfile = startFileCPUProfile(b, prof)
		}
		started := time.Now()
		t, err := p.alice.SendFile(ctx, p.bobName, src)
		if err != nil {
			b.Fatalf("send file: %v", err)
		}
		offered := time.Now()
		done, err := p.waitCompleted(t.ID(), 10*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		stopProfile()
		total, xfer := done.Sub(started), done.Sub(offered)
		totals, xfers, bares = append(totals, total), append(xfers, xfer), append(bares, bare)
		xferRatio = append(xferRatio, bare.Seconds()/xfer.Seconds())
		totalRatio = append(totalRatio, bare.Seconds()/total.Seconds())
		b.Logf("round %d: chatx total %.0f MB/s (%.2f s), chatx transfer %.0f MB/s (%.2f s), bare quic-go %.0f MB/s (%.2f s), xfer/bare %.2f, total/bare %.2f",
			i+1, fileMBs(size, total), total.Seconds(), fileMBs(size, xfer), xfer.Seconds(), fileMBs(size, bare), bare.Seconds(),
			xferRatio[i], totalRatio[i])
		// The next round writes the same name: remove this one's file.
		if err := os.Remove(filepath.Join(p.bobDownloads, "random.bin")); err != nil {
			b.Fatalf("remove received file: %v", err)
		}
	}
	b.StopTimer()
	b.ReportMetric(fileMBs(size, medianDuration(totals)), "total-MB/s")
	b.ReportMetric(fileMBs(size, medianDuration(xfers)), "xfer-MB/s")
	b.ReportMetric(fileMBs(size, medianDuration(bares)), "bare-MB/s")
	b.ReportMetric(medianFloat(xferRatio), "xfer/bare")
	b.ReportMetric(medianFloat(totalRatio), "total/bare")
	if hwm, err := peakRSS(); err == nil {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	} else {
		b.Logf("peak RSS: %v", err)
	}
	b.ReportMetric(0, "ns/op")
}

// peakRSS is the process's peak resident set (VmHWM) in bytes: both
// clients, the registry and the bare copies together.
func peakRSS() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

// filesPair is two whole clients: alice sends, bob accepts every offer.
type filesPair struct {
	alice        *app.Client
	bobName      domain.Username
	bobDownloads string

	mu      sync.Mutex
	done    map[domain.TransferID]time.Time
	failed  map[domain.TransferID]string
	changed chan struct{}
	stop    func()
}

func newFilesPair(tb testing.TB, base string) *filesPair {
	tb.Helper()
	return newFilesPairWith(tb, base, app.Options{FilePath: benchFilePath(tb)}, nil)
}

// newFilesPairWith starts alice with opts and, unless nil, her log going
// to log.
func newFilesPairWith(tb testing.TB, base string, opts app.Options, log slog.Handler) *filesPair {
	tb.Helper()
	c := newCluster(tb, base)
	alice := c.start
	if log != nil {
		alice = func(name string, opts app.Options) *app.Client { return c.startLogged(name, opts, slog.New(log)) }
	}
	p := &filesPair{
		alice:        alice("alice", opts),
		bobName:      domain.MustUsername("bob"),
		bobDownloads: filepath.Join(base, "bob-downloads"),
		done:         make(map[domain.TransferID]time.Time),
		failed:       make(map[domain.TransferID]string),
		changed:      make(chan struct{}),
		stop:         c.stop,
	}
	bob := c.start("bob", app.Options{AutoAccept: true, AcceptFromAnyone: true})
	go p.follow(bob.Subscribe(c.ctx))
	// bob has alice as a contact: a stranger's offer waits as a request
	// and is not accepted automatically.
	c.addContact(bob, domain.MustUsername("alice"))
	c.firstSend(p.alice, p.bobName)
	return p
}

// benchFilePath is alice's --file-path: CHATX_BENCH_FILE_PATH, default udp
// (QUIC, the path these benchmarks compare with bare quic-go; auto would take
// the TCP file stream beside the loopback TCP message link).
func benchFilePath(tb testing.TB) app.FilePath {
	m, err := domain.ParseFilePathMode(cmp.Or(os.Getenv("CHATX_BENCH_FILE_PATH"), string(domain.FilePathOnlyUDP)))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// follow records when bob saw each transfer Completed (or why it failed).
func (p *filesPair) follow(events <-chan ports.Event) {
	for ev := range events {
		e, ok := ev.(ports.TransferEvent)
		if !ok {
			continue
		}
		now := time.Now()
		t := e.Transfer
		p.mu.Lock()
		switch t.State() {
		case domain.TransferCompleted:
			if _, seen := p.done[t.ID()]; !seen {
				p.done[t.ID()] = now
			}
		case domain.TransferFailed, domain.TransferCancelled, domain.TransferDeclined:
			p.failed[t.ID()] = fmt.Sprintf("%s: %s", t.State(), t.Reason())
		default:
			p.mu.Unlock()
			continue
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

// waitEnded returns when bob saw transfer id end: cancelled, declined,
// failed, or completed (a small file may be whole before the cancel).
func (p *filesPair) waitEnded(id domain.TransferID, timeout time.Duration) error {
	_, _, err := p.waitEnd(id, timeout)
	return err
}

// waitCompleted returns when bob saw transfer id Completed.
func (p *filesPair) waitCompleted(id domain.TransferID, timeout time.Duration) (time.Time, error) {
	at, reason, err := p.waitEnd(id, timeout)
	if err == nil && reason != "" {
		err = fmt.Errorf("transfer %s at bob: %s", id.Short(), reason)
	}
	return at, err
}

// waitEnd returns when bob saw transfer id completed (at) or end otherwise
// (reason).
func (p *filesPair) waitEnd(id domain.TransferID, timeout time.Duration) (at time.Time, reason string, err error) {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		at, done := p.done[id]
		reason, failed := p.failed[id]
		ch := p.changed
		p.mu.Unlock()
		if done || failed {
			return at, reason, nil
		}
		select {
		case <-ch:
		case <-deadline:
			return time.Time{}, "", fmt.Errorf("transfer %s not ended at bob within %s", id.Short(), timeout)
		}
	}
}

// writeRandomFile writes size bytes of ChaCha8 output to path and flushes
// them to disk.
func writeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		f.Close()
		return err
	}
	r := mrand.NewChaCha8(seed)
	buf := make([]byte, 4<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		_, _ = r.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		left -= n
	}
	// Flushed, so its dirty pages do not compete with the transfers' writes.
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// bareQUICCopy copies size bytes on one quic-go stream over loopback with
// adapters/udp's flow-control windows, from a 256 KiB buffer to io.Discard,
// and returns the time from opening the stream until the receiver said it
// had every byte.
func bareQUICCopy(size int64) (time.Duration, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return 0, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return 0, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
	qconf := &quic.Config{
		InitialStreamReceiveWindow: 1 << 20, MaxStreamReceiveWindow: 16 << 20,
		InitialConnectionReceiveWindow: 2 << 20, MaxConnectionReceiveWindow: 48 << 20,
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"}, MinVersion: tls.VersionTLS13}, qconf)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			got <- err
			return
		}
		defer conn.CloseWithError(0, "")
		str, err := conn.AcceptStream(ctx)
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
		select { // the client closes once it read the byte
		case <-conn.Context().Done():
		case <-ctx.Done():
		}
	}()
	conn, err := quic.DialAddr(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}, MinVersion: tls.VersionTLS13}, qconf)
	if err != nil {
		return 0, err
	}
	defer conn.CloseWithError(0, "")
	started := time.Now()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	_, _ = rand.Read(buf)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		if _, err := str.Write(buf[:n]); err != nil {
			return 0, err
		}
		left -= n
	}
	if err := str.Close(); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(str, make([]byte, 1)); err != nil {
		return 0, err
	}
	d := time.Since(started)
	_ = conn.CloseWithError(0, "")
	return d, <-got
}

// startFileCPUProfile profiles the first chatx round into path
// (CHATX_BENCH_CPUPROFILE; not together with go test -cpuprofile).
func startFileCPUProfile(b *testing.B, path string) func() {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatalf("cpu profile: %v", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func fileMBs(size int64, d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }

func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianFloat(fs []float64) float64 {
	s := slices.Clone(fs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkSendFileFirstByte measures how soon a transfer starts: from
// alice's Client.SendFile of a CHATX_BENCH_FILE_MIB file (default 1024 MiB;
// CHATX_BENCH_FILE_SPARSE=1: a sparse file, nothing written) until
//
//   - sent-ms: the first data byte leaves alice: the debug record
//     udp.LogFirstDataByte of alice's file transport, logged as the first
//     data is written to the stream (after offer, bob's automatic accept,
//     the stream, its header, bob's answer and START);
//   - at-bob-ms: the first byte is in bob's part file.
//
// Nothing is read before the offer (stream version 2), so neither grows
// with the file's size. Each round cancels the transfer after its first
// byte and waits until bob has it cancelled, so that no round starts while
// the last one still streams. CHATX_BENCH_FILE_PATH=udp|tcp chooses
// alice's --file-path (default auto: TCP beside the direct TCP link).
// Reported: medians and the slowest round of each.
func BenchmarkSendFileFirstByte(b *testing.B) {
	size := int64(1024) << 20
	if v, err := strconv.Atoi(os.Getenv("CHATX_BENCH_FILE_MIB")); err == nil && v > 0 {
		size = int64(v) << 20
	}
	mode, err := domain.ParseFilePathMode(os.Getenv("CHATX_BENCH_FILE_PATH"))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "first.bin")
	if os.Getenv("CHATX_BENCH_FILE_SPARSE") != "" {
		err = writeSparseFile(src, size)
	} else {
		err = writeRandomFile(src, size)
	}
	if err != nil {
		b.Fatal(err)
	}
	sent := newFirstByteLog()
	p := newFilesPairWith(b, dir, app.Options{FilePath: mode}, sent)
	defer p.stop()
	ctx := context.Background()
	var sents, firsts []time.Duration
	b.ResetTimer()
	for i := range b.N {
		started := time.Now()
		t, err := p.alice.SendFile(ctx, p.bobName, src)
		if err != nil {
			b.Fatalf("send file: %v", err)
		}
		part := filepath.Join(p.bobDownloads, "first.bin."+t.ID().Short()+".part")
		var first time.Duration
		for deadline := started.Add(time.Minute); ; {
			if fi, err := os.Stat(part); err == nil && fi.Size() > 0 {
				first = time.Since(started)
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("no byte arrived within a minute")
			}
			time.Sleep(200 * time.Microsecond) // polling the file system, not waiting for an outcome
		}
		at, ok := sent.at(t.ID())
		if !ok {
			b.Fatalf("no %q record for transfer %s at alice", udp.LogFirstDataByte, t.ID().Short())
		}
		sents, firsts = append(sents, at.Sub(started)), append(firsts, first)
		b.Logf("round %d: first data byte sent %.1f ms after SendFile, at bob %.1f ms", i+1, ms(at.Sub(started)), ms(first))
		if err := p.alice.CancelTransfer(ctx, t.ID()); err != nil {
			b.Fatalf("cancel: %v", err)
		}
		if err := p.waitEnded(t.ID(), time.Minute); err != nil {
			b.Fatal(err)
		}
		if err := os.Remove(filepath.Join(p.bobDownloads, "first.bin")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(medianDuration(sents)), "sent-ms")
	b.ReportMetric(ms(slices.Max(sents)), "slowest-sent-ms")
	b.ReportMetric(ms(medianDuration(firsts)), "at-bob-ms")
	b.ReportMetric(ms(slices.Max(firsts)), "slowest-at-bob-ms")
	b.ReportMetric(0, "ns/op")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// writeSparseFile makes a file of size bytes that holds no data (reads
// give zeros and touch no disk).
func writeSparseFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("truncate %s: %w", path, err)
	}
	return f.Close()
}

// firstByteLog is a slog handler that keeps the time of each
// udp.LogFirstDataByte record by transfer, passing every record on to next
// as far as next wants it.
type firstByteLog struct {
	next  slog.Handler
	attrs []slog.Attr
	mu    *sync.Mutex
	times map[string]time.Time // by short transfer ID
}

func newFirstByteLog() *firstByteLog {
	return &firstByteLog{next: slog.NewTextHandler(io.Discard, nil), mu: new(sync.Mutex), times: make(map[string]time.Time)}
}

func (h *firstByteLog) Enabled(ctx context.Context, l slog.Level) bool { return true }

func (h *firstByteLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == udp.LogFirstDataByte {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "transfer" {
				h.mu.Lock()
				if _, seen := h.times[a.Value.String()]; !seen {
					h.times[a.Value.String()] = r.Time
				}
				h.mu.Unlock()
				return false
			}
			return true
		})
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *firstByteLog) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *firstByteLog) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

func (h *firstByteLog) at(id domain.TransferID) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.times[id.Short()]
	return t, ok
}
