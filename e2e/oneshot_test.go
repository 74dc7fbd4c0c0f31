package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// oneShot is a `chatx send`, `chatx receive` or `chatx msg` process.
type oneShot struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr *syncBuffer
	profile        string
	done           chan struct{}
	code           int
}

// startOneShot runs chatx with args for name's profile in dirs; its
// standard input is a pipe the test writes to.
func startOneShot(t *testing.T, name, registryURL string, dirs clientDirs, args ...string) *oneShot {
	t.Helper()
	all := append([]string{args[0], "--name", name, "--profile", dirs.profile, "--registry", registryURL,
		"--listen-tcp", "127.0.0.1:0", "--listen-udp", "127.0.0.1:0", "--accept-from-anyone"}, args[1:]...)
	p := &oneShot{t: t, cmd: exec.Command(chatxBin, all...), stdout: &syncBuffer{}, stderr: &syncBuffer{},
		profile: dirs.profile, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		default:
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit status.
func (p *oneShot) wait(ctx context.Context) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-ctx.Done():
		p.t.Fatalf("%v did not exit: %v\n%s", p.cmd.Args[:2], ctx.Err(), p.logs())
		return 0
	}
}

// waitStderr waits until the process printed want on stderr.
func (p *oneShot) waitStderr(ctx context.Context, want string) {
	p.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.stderr.String(), want) {
		select {
		case <-p.done:
			p.t.Fatalf("%v exited (%d) before printing %q\nstderr:\n%s", p.cmd.Args[:2], p.code, want, p.stderr)
		case <-ctx.Done():
			p.t.Fatalf("%v never printed %q\nstderr:\n%s", p.cmd.Args[:2], want, p.stderr)
		case <-tick.C:
		}
	}
}

// logs is what the process printed, and its log file.
func (p *oneShot) logs() string {
	log, _ := os.ReadFile(filepath.Join(p.profile, "chatx.log"))
	return "stdout:\n" + p.stdout.String() + "\nstderr:\n" + p.stderr.String() + "\nchatx.log:\n" + string(log)
}

func writeRandomFile(t *testing.T, path string, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSendToReceiveYes: `chatx receive --yes --to DIR` in one process,
// `chatx send bob FILE FOLDER` in another; both arrive byte for byte, both
// processes exit 0, and the receiver says where it saved each — under a new
// name for the file whose name was taken.
func TestSendToReceiveYes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")
	to := filepath.Join(t.TempDir(), "incoming")
	base := t.TempDir()
	src := filepath.Join(base, "report 2026.bin")
	data := writeRandomFile(t, src, 3<<20+777)
	album := filepath.Join(base, "album")
	if err := os.MkdirAll(filepath.Join(album, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	first := writeRandomFile(t, filepath.Join(album, "a.jpg"), 100<<10)
	second := writeRandomFile(t, filepath.Join(album, "sub", "b.jpg"), 1)
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, "report 2026.bin"), []byte("bob's own"), 0o600); err != nil {
		t.Fatal(err)
	}

	recv := startOneShot(t, "bob", reg.url, bobDirs, "receive", "--yes", "--to", to)
	recv.waitStderr(ctx, "waiting for files")
	send := startOneShot(t, "alice", reg.url, aliceDirs, "send", "bob", src, album)

	if code := send.wait(ctx); code != 0 {
		t.Fatalf("send exited %d\n%s\nreceiver:\n%s", code, send.logs(), recv.logs())
	}
	if code := recv.wait(ctx); code != 0 {
		t.Fatalf("receive exited %d\n%s", code, recv.logs())
	}
	for path, want := range map[string][]byte{
		"report 2026 (1).bin": data, "report 2026.bin": []byte("bob's own"),
		"album/a.jpg": first, "album/sub/b.jpg": second,
	} {
		got, err := os.ReadFile(filepath.Join(to, filepath.FromSlash(path)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v, same bytes %v", path, err, bytes.Equal(got, want))
		}
	}
	for _, saved := range []string{"report 2026 (1).bin", "album"} {
		if !strings.Contains(recv.stdout.String(), "saved to "+filepath.Join(to, saved)+"\n") {
			t.Fatalf("receiver did not say it saved %s:\n%s", saved, recv.logs())
		}
	}
	if !strings.Contains(send.stderr.String(), "sent report 2026.bin to bob: 3.0 MiB in") ||
		!strings.Contains(send.stderr.String(), "average") || !strings.Contains(send.stderr.String(), "sent album to bob") {
		t.Fatalf("sender printed no summary:\n%s", send.logs())
	}
}

// TestReceiveDeclinedGivesTheSenderTheReason: receive without --yes,
// answering "n": the sender exits with the decline status and says so.
func TestReceiveDeclinedGivesTheSenderTheReason(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")
	to := filepath.Join(t.TempDir(), "incoming")
	src := filepath.Join(t.TempDir(), "unwanted.bin")
	writeRandomFile(t, src, 64<<10)

	recv := startOneShot(t, "bob", reg.url, bobDirs, "receive", "--to", to)
	recv.waitStderr(ctx, "waiting for files")
	send := startOneShot(t, "alice", reg.url, aliceDirs, "send", "bob", src)
	recv.waitStderr(ctx, "alice offers unwanted.bin (64.0 KiB). Accept? [y/N]")
	if _, err := io.WriteString(recv.stdin, "n\n"); err != nil {
		t.Fatal(err)
	}
	if code := send.wait(ctx); code != 3 {
		t.Fatalf("send exited %d, want 3 (declined)\n%s", code, send.logs())
	}
	if !strings.Contains(send.stderr.String(), "bob declined unwanted.bin") {
		t.Fatalf("sender did not say why it failed:\n%s", send.logs())
	}
	recv.waitStderr(ctx, "declined unwanted.bin")
	if entries, _ := os.ReadDir(to); len(entries) != 0 {
		t.Fatalf("a declined file left %d entries in %s", len(entries), to)
	}
	// Declining is no reason to stop: receive waits for the next offer
	// until Ctrl-C.
	_ = recv.cmd.Process.Signal(syscall.SIGINT)
	if code := recv.wait(ctx); code != 130 {
		t.Fatalf("receive after Ctrl-C exited %d, want 130\n%s", code, recv.logs())
	}
}

// TestMsgIsDeliveredToARunningClient: `chatx msg` exits 0 once bob's
// client acknowledged the message, which is then in bob's history.
func TestMsgIsDeliveredToARunningClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")
	bob := startClient(t, "bob", reg.url, bobDirs)
	var who struct{ Name string }
	bob.call("whoami", map[string]any{}, &who) // bob's client answers: it runs

	msg := startOneShot(t, "alice", reg.url, aliceDirs, "msg", "bob", "hello", "from the shell")
	if code := msg.wait(ctx); code != 0 {
		t.Fatalf("msg exited %d\n%s\nbob:\n%s", code, msg.logs(), bob.logs.String())
	}
	if !strings.Contains(msg.stderr.String(), "delivered to bob") {
		t.Fatalf("msg did not say it was delivered:\n%s", msg.logs())
	}
	var history []messageNote
	bob.call("history", map[string]any{"with": "alice"}, &history)
	if len(history) != 1 || history[0].Text != "hello from the shell" || history[0].From != "alice" || history[0].Direction != "in" {
		t.Fatalf("bob's history with alice: %+v", history)
	}
}

// TestCtrlCOnTheSenderCancelsAtBothEnds: SIGINT to `chatx send` while the
// bytes move cancels the transfer; the receiver reports who cancelled, no
// file (or part) is left, and both exit non-zero.
func TestCtrlCOnTheSenderCancelsAtBothEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	recv, send, to := startHugeTransfer(ctx, t)
	defer func() {
		if t.Failed() {
			t.Logf("sender:\n%s", send.logs())
		}
	}()

	if err := send.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := send.wait(ctx); code != 130 {
		t.Fatalf("send after Ctrl-C exited %d, want 130\n%s", code, send.logs())
	}
	if code := recv.wait(ctx); code != 4 {
		t.Fatalf("receive exited %d, want 4 (cancelled)\n%s\nsender:\n%s", code, recv.logs(), send.logs())
	}
	if !strings.Contains(recv.stderr.String(), "huge.bin: cancelled by the sender (alice)") {
		t.Fatalf("receiver did not say the sender cancelled:\n%s", recv.logs())
	}
	if strings.Contains(recv.stdout.String(), "saved to") {
		t.Fatalf("a cancelled transfer was saved:\n%s", recv.logs())
	}
	if entries, _ := os.ReadDir(to); len(entries) != 0 {
		t.Fatalf("the cancelled transfer left %d entries in %s (%v)", len(entries), to, entries)
	}
}

// startHugeTransfer runs a registry, `chatx receive --yes` as bob and
// `chatx send bob huge.bin` as alice, and returns once bytes arrive in the
// receiver's folder (returned too).
func startHugeTransfer(ctx context.Context, t *testing.T) (recv, send *oneShot, to string) {
	t.Helper()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")
	to = filepath.Join(t.TempDir(), "incoming")
	src := filepath.Join(t.TempDir(), "huge.bin")
	// Sparse: big enough that the bytes are still moving when the test
	// sees the first of them arrive, cheap to make.
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(512 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	recv = startOneShot(t, "bob", reg.url, bobDirs, "receive", "--yes", "--to", to)
	recv.waitStderr(ctx, "waiting for files")
	send = startOneShot(t, "alice", reg.url, aliceDirs, "send", "bob", src)
	recv.waitStderr(ctx, "accepted huge.bin")
	waitForBytes(ctx, t, to, recv)
	return recv, send, to
}

// waitForBytes waits until some file under dir holds data: the transfer's
// part file is being written.
func waitForBytes(ctx context.Context, t *testing.T, dir string, p *oneShot) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		found := false
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if info, err := d.Info(); err == nil && info.Size() > 0 {
					found = true
				}
			}
			return nil
		})
		if found {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no bytes arrived in %s\n%s", dir, p.logs())
		case <-p.done:
			t.Fatalf("receive exited (%d) before bytes arrived\n%s", p.code, p.logs())
		case <-tick.C:
		}
	}
}

// TestSendWaitsForAnOfflineReceiver: bob has an account but is offline.
// With --timeout the sender gives up (exit 5); without, it says it waits,
// and the file goes once bob runs `chatx receive`.
func TestSendWaitsForAnOfflineReceiver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	aliceDirs, bobDirs := newDirs(t, "alice"), newDirs(t, "bob")
	to := filepath.Join(t.TempDir(), "incoming")
	src := filepath.Join(t.TempDir(), "later.bin")
	data := writeRandomFile(t, src, 200<<10)

	// bob signs up, then goes offline.
	first := startOneShot(t, "bob", reg.url, bobDirs, "receive", "--to", to)
	first.waitStderr(ctx, "waiting for files")
	_ = first.cmd.Process.Signal(syscall.SIGINT)
	if code := first.wait(ctx); code != 130 {
		t.Fatalf("idle receive after Ctrl-C exited %d, want 130\n%s", code, first.logs())
	}

	impatient := startOneShot(t, "alice", reg.url, aliceDirs, "send", "--timeout", "1s", "bob", src)
	if code := impatient.wait(ctx); code != 5 {
		t.Fatalf("send --timeout to an offline peer exited %d, want 5\n%s", code, impatient.logs())
	}
	if s := impatient.stderr.String(); !strings.Contains(s, "waiting for bob to come online") || !strings.Contains(s, "bob did not come online within 1s") {
		t.Fatalf("send --timeout did not say what it waited for:\n%s", impatient.logs())
	}

	send := startOneShot(t, "alice", reg.url, aliceDirs, "send", "bob", src)
	send.waitStderr(ctx, "waiting for bob to come online")
	recv := startOneShot(t, "bob", reg.url, bobDirs, "receive", "--yes", "--to", to)
	if code := send.wait(ctx); code != 0 {
		t.Fatalf("send exited %d\n%s\nreceiver:\n%s", code, send.logs(), recv.logs())
	}
	if code := recv.wait(ctx); code != 0 {
		t.Fatalf("receive exited %d\n%s", code, recv.logs())
	}
	got, err := os.ReadFile(filepath.Join(to, "later.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received file: %v, same bytes %v", err, bytes.Equal(got, data))
	}
	// The offer the impatient sender cancelled was not taken.
	if n := strings.Count(recv.stdout.String(), "saved to"); n != 1 {
		t.Fatalf("receiver saved %d files, want 1:\n%s", n, recv.logs())
	}
}

// TestCtrlCOnTheReceiverCancelsAtBothEnds: SIGINT to `chatx receive` while
// the bytes move: the sender hears who cancelled and exits 4.
func TestCtrlCOnTheReceiverCancelsAtBothEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	recv, send, to := startHugeTransfer(ctx, t)

	if err := recv.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := recv.wait(ctx); code != 130 {
		t.Fatalf("receive after Ctrl-C exited %d, want 130\n%s", code, recv.logs())
	}
	if code := send.wait(ctx); code != 4 {
		t.Fatalf("send exited %d, want 4 (cancelled)\n%s\nreceiver:\n%s", code, send.logs(), recv.logs())
	}
	if !strings.Contains(send.stderr.String(), "huge.bin: cancelled by bob") {
		t.Fatalf("sender did not say who cancelled:\n%s", send.logs())
	}
	if entries, _ := os.ReadDir(to); len(entries) != 0 {
		t.Fatalf("the cancelled transfer left %d entries in %s", len(entries), to)
	}
}
