package main

// The striping benchmark (issue 15 item 2): sender and receiver as two
// processes of this binary, optionally pinned to one core each with
// taskset (sender core 0, receiver core 1), for each stripe count, in
// interleaved rounds. Each child reports its own CPU time (user + system,
// getrusage) over the transfer; the sender's wall time runs from Send to
// its return (the receiver verified the file and gave it its name).
//
//	go run ./adapters/udp/internal/filebench -stripes 1,2,4 -size 1GiB -repeat 5 -pin both
//
// -stripe-path tcp runs the same over the TCP file path (SendTCP: TLS 1.3
// connections to the receiver's TCP file listener).

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/adapters/udp/internal/diskfile"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var (
	stripesFlag  = flag.String("stripes", "", "run the two-process striping benchmark for these stripe counts (e.g. 1,2,4) instead of the other runs")
	pinFlag      = flag.String("pin", "both", "striping benchmark: yes (sender on core 0, receiver on core 1, taskset), no, or both (interleaved)")
	stripeChild  = flag.String("stripe-child", "", "internal: send or recv, one process of the striping benchmark")
	childStripes = flag.Int("child-stripes", 1, "internal: udp.Config.Stripes of a striping child")
	childPeer    = flag.String("child-peer", "", "internal: the receiver's endpoint and key (sender child)")
	childID      = flag.String("child-id", "", "internal: the transfer ID of a striping child")
	childSrc     = flag.String("child-src", "", "internal: the source file (sender) or its hash (receiver)")
	stripePath   = flag.String("stripe-path", "udp", "striping benchmark: the file path, udp (QUIC, Send) or tcp (TLS 1.3 over TCP, SendTCP)")
	stripeProf   = flag.String("stripe-profile", "", "striping benchmark: write CPU profiles of every sender and receiver process into this `dir` (send-N-pinned.pprof, recv-…)")
)

// stripeResult is one transfer of the striping benchmark.
type stripeResult struct {
	wall           time.Duration
	sendCPU, rcCPU time.Duration
	sendRSS, rcRSS int64 // peak RSS (VmHWM) of each process, bytes
}

func stripeBench(size int64, dir string, repeat int) error {
	var counts []int
	for _, s := range strings.Split(*stripesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 8 {
			return fmt.Errorf("-stripes %q: want counts 1..8", *stripesFlag)
		}
		counts = append(counts, n)
	}
	var pins []bool
	switch *pinFlag {
	case "yes":
		pins = []bool{true}
	case "no":
		pins = []bool{false}
	case "both":
		pins = []bool{true, false}
	default:
		return fmt.Errorf("-pin %q: want yes, no or both", *pinFlag)
	}
	if *stripePath != "udp" && *stripePath != "tcp" {
		return fmt.Errorf("-stripe-path %q: want udp or tcp", *stripePath)
	}
	if len(pins) > 0 && pins[0] {
		if _, err := exec.LookPath("taskset"); err != nil {
			return fmt.Errorf("pinning needs taskset: %w", err)
		}
	}
	work, err := os.MkdirTemp(dir, "stripebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "source.bin")
	fmt.Printf("machine: %d CPUs, %s, %s; load %s\n", runtime.NumCPU(), cpuModel(), runtime.Version(), loadAvg())
	fmt.Printf("generating %s of random data...\n", human(size))
	sum, err := diskfile.WriteRandom(src, size, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	type cell struct {
		pin     bool
		stripes int
	}
	results := map[cell][]stripeResult{}
	for round := range repeat {
		for _, pin := range pins {
			for _, n := range counts {
				r, err := stripeRun(src, sum, size, filepath.Join(work, "recv"), n, pin)
				if err != nil {
					return fmt.Errorf("round %d, %d stripes, pinned %v: %w", round+1, n, pin, err)
				}
				results[cell{pin, n}] = append(results[cell{pin, n}], r)
				fmt.Printf("round %d: pinned %-5v %d stripes: %4.0f MB/s, CPU s/GiB sender %.2f receiver %.2f\n", round+1, pin, n,
					mbs(size, r.wall), perGiB(r.sendCPU, size), perGiB(r.rcCPU, size))
			}
		}
	}
	fmt.Printf("\nload after: %s\n", loadAvg())
	fmt.Printf("\n| %s over %s, loopback, 2 processes, median of %d | stripes | MB/s | CPU s per GiB, sender | receiver | sum | peak RSS sender / receiver (max) |\n|---|---|---|---|---|---|---|\n", human(size), *stripePath, repeat)
	for _, pin := range pins {
		for _, n := range counts {
			rs := results[cell{pin, n}]
			var wall, s, r, both []time.Duration
			var sRSS, rRSS int64
			for _, x := range rs {
				wall, s, r, both = append(wall, x.wall), append(s, x.sendCPU), append(r, x.rcCPU), append(both, x.sendCPU+x.rcCPU)
				sRSS, rRSS = max(sRSS, x.sendRSS), max(rRSS, x.rcRSS)
			}
			where := "no taskset"
			if pin {
				where = "taskset: sender core 0, receiver core 1"
			}
			fmt.Printf("| %s | %d | %.0f | %.2f | %.2f | %.2f | %.0f / %.0f MiB |\n", where, n, mbs(size, median(wall)),
				perGiB(median(s), size), perGiB(median(r), size), perGiB(median(both), size), float64(sRSS)/(1<<20), float64(rRSS)/(1<<20))
		}
	}
	return nil
}

func perGiB(d time.Duration, size int64) float64 { return d.Seconds() / (float64(size) / (1 << 30)) }

// childCommand runs this binary as a striping child, pinned to core when
// pin.
func childCommand(pin bool, core int, args ...string) *exec.Cmd {
	if pin {
		return exec.Command("taskset", append([]string{"-c", strconv.Itoa(core), os.Args[0]}, args...)...)
	}
	return exec.Command(os.Args[0], args...)
}

// stripeRun runs one transfer: a receiver child, then a sender child.
func stripeRun(src string, sum diskfile.Sums, size int64, recvDir string, stripes int, pin bool) (stripeResult, error) {
	if err := os.MkdirAll(recvDir, 0o700); err != nil {
		return stripeResult{}, err
	}
	id := domain.NewTransferID()
	n := strconv.Itoa(stripes)
	prof := func(side string) string {
		if *stripeProf == "" {
			return ""
		}
		return filepath.Join(*stripeProf, fmt.Sprintf("%s-%d-pinned-%v.pprof", side, stripes, pin))
	}
	recv := childCommand(pin, 1, "-stripe-child", "recv", "-stripe-path", *stripePath, "-child-stripes", n, "-child-id", id.String(),
		"-child-src", sum.String(), "-dir", recvDir, "-cpuprofile", prof("recv"))
	recv.Stderr = os.Stderr
	out, err := recv.StdoutPipe()
	if err != nil {
		return stripeResult{}, err
	}
	if err := recv.Start(); err != nil {
		return stripeResult{}, err
	}
	defer func() { _ = recv.Process.Kill(); _ = recv.Wait() }()
	lines := bufio.NewScanner(out)
	ready, err := childLine(lines, "READY ")
	if err != nil {
		return stripeResult{}, fmt.Errorf("receiver: %w", err)
	}
	send := childCommand(pin, 0, "-stripe-child", "send", "-stripe-path", *stripePath, "-child-stripes", n, "-child-id", id.String(),
		"-child-src", src, "-child-peer", ready, "-cpuprofile", prof("send"))
	send.Stderr = os.Stderr
	sout, err := send.Output()
	if err != nil {
		return stripeResult{}, fmt.Errorf("sender: %w", err)
	}
	sent, err := childLine(bufio.NewScanner(strings.NewReader(string(sout))), "SENT ")
	if err != nil {
		return stripeResult{}, fmt.Errorf("sender: %w", err)
	}
	got, err := childLine(lines, "RECEIVED ")
	if err != nil {
		return stripeResult{}, fmt.Errorf("receiver: %w", err)
	}
	var r stripeResult
	var wallS, sendS, recvS float64
	if _, err := fmt.Sscanf(sent, "%g %g %d", &wallS, &sendS, &r.sendRSS); err != nil {
		return r, fmt.Errorf("sender said %q: %w", sent, err)
	}
	if _, err := fmt.Sscanf(got, "%g %d", &recvS, &r.rcRSS); err != nil {
		return r, fmt.Errorf("receiver said %q: %w", got, err)
	}
	r.wall, r.sendCPU, r.rcCPU = seconds(wallS), seconds(sendS), seconds(recvS)
	return r, recv.Wait()
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// childLine returns the rest of the next line starting with prefix.
func childLine(sc *bufio.Scanner, prefix string) (string, error) {
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return rest, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("ended without %q", strings.TrimSpace(prefix))
}

// runStripeChild is one process of the striping benchmark; a non-empty
// profile gets its CPU profile.
func runStripeChild(dir, profile string) error {
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	id, err := domain.ParseTransferID(*childID)
	if err != nil {
		return err
	}
	me, err := identity(map[string]string{"send": "alice", "recv": "bob"}[*stripeChild])
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := udp.Config{ListenAddr: "127.0.0.1:0", BufferSize: bufferSize, Stripes: *childStripes, StripeMinSize: 1,
		NoTCPFiles: *stripePath != "tcp" || *stripeChild != "recv"}
	tr, closeT, err := udp.NewTransport(me, acceptAll{}, nil, cfg, log)
	// The TCP port of the number picked for UDP may be taken: try others.
	for try := 0; err == nil && !cfg.NoTCPFiles && tr.TCPFileAddr() == "" && try < 5; try++ {
		closeT()
		tr, closeT, err = udp.NewTransport(me, acceptAll{}, nil, cfg, log)
	}
	if err != nil {
		return err
	}
	defer closeT()
	if !cfg.NoTCPFiles && tr.TCPFileAddr() == "" {
		return errors.New("no TCP file listener on six ephemeral ports")
	}
	switch *stripeChild {
	case "recv":
		return stripeReceiver(tr, me.Identity, id, dir)
	case "send":
		return stripeSender(tr, id)
	}
	return fmt.Errorf("-stripe-child %q: want send or recv", *stripeChild)
}

func stripeReceiver(tr *udp.Transport, me domain.Identity, id domain.TransferID, dir string) error {
	sum, err := diskfile.ParseSums(*childSrc)
	if err != nil {
		return fmt.Errorf("-child-src: %w", err)
	}
	recv := diskfile.New(dir)
	e := recv.Expect(id, 0, "received.bin", sum)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- tr.Serve(ctx, recv) }()
	defer func() { cancel(); <-served }()
	c0 := cpuTime()
	fmt.Printf("READY %s %s\n", tr.Endpoints()[0], hex.EncodeToString(me.PublicKey()))
	select {
	case <-e.Finished():
	case <-time.After(10 * time.Minute):
		return errors.New("no file within 10 minutes")
	}
	cpu := cpuTime() - c0
	s := e.Sessions()
	if len(s) == 0 || s[len(s)-1].Result != nil {
		return fmt.Errorf("the file was not received: %+v", s)
	}
	_ = os.Remove(recv.Path(e))
	hwm, err := vmHWM()
	if err != nil {
		return err
	}
	fmt.Printf("RECEIVED %.4f %d\n", cpu.Seconds(), hwm)
	return nil
}

func stripeSender(tr *udp.Transport, id domain.TransferID) error {
	f := strings.Fields(*childPeer)
	if len(f) != 2 {
		return errors.New("-child-peer: want endpoint and key")
	}
	key, err := hex.DecodeString(f[1])
	if err != nil {
		return err
	}
	bob, err := domain.NewIdentity(domain.MustUsername("bob"), key)
	if err != nil {
		return err
	}
	src, err := diskfile.Open(*childSrc)
	if err != nil {
		return err
	}
	defer src.Close()
	peer := domain.Peer{Identity: bob, Endpoints: domain.Endpoints{File: []string{f[0]}}}
	c0, t0 := cpuTime(), time.Now()
	send := tr.Send
	if *stripePath == "tcp" {
		send = func(ctx context.Context, to domain.Peer, id domain.TransferID, i int, src ports.FileSource, p func(int64)) error {
			return tr.SendTCP(ctx, to, "127.0.0.1", id, i, src, p)
		}
	}
	if err := send(context.Background(), peer, id, 0, src, nil); err != nil {
		return err
	}
	wall, cpu := time.Since(t0), cpuTime()-c0
	hwm, err := vmHWM()
	if err != nil {
		return err
	}
	fmt.Printf("SENT %.4f %.4f %d\n", wall.Seconds(), cpu.Seconds(), hwm)
	return nil
}
