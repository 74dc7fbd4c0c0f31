package udp_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/adapters/udp/internal/diskfile"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports/contract"
)

// lossNS is a network namespace of its own with only loopback, where an
// nftables rule on the output hook drops a share of the UDP we send — so
// sendmsg fails with EPERM, as behind a local firewall.
type lossNS struct{ name string }

func newLossNS(t *testing.T, percent int) *lossNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace and nftables")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	ns := &lossNS{name: fmt.Sprintf("files-eperm-%d", os.Getpid())}
	if out, err := exec.Command("ip", "netns", "add", ns.name).CombinedOutput(); err != nil {
		t.Skipf("cannot make a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns.name).Run() })
	ns.run(t, "ip", "link", "set", "lo", "up")
	rules := fmt.Sprintf(`table inet filesloss {
	counter refused {}
	chain out {
		type filter hook output priority 0; policy accept;
		meta l4proto udp numgen random mod 100 < %d counter name refused drop
	}
}
`, percent)
	cmd := exec.Command("ip", "netns", "exec", ns.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("nftables refused the ruleset: %v: %s", err, out)
	}
	return ns
}

func (ns *lossNS) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.name, name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v in %s: %v: %s", name, args, ns.name, err, out)
	}
	return string(out)
}

// refused is how many packets the rule dropped so far.
func (ns *lossNS) refused(t *testing.T) int {
	m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(ns.run(t, "nft", "list", "counter", "inet", "filesloss", "refused"))
	if m == nil {
		t.Fatal("no packet count in the nftables counter")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// inNS runs f on an OS thread switched into the namespace; sockets made
// there stay in it, whatever thread uses them later. The thread stays
// locked and so ends with the goroutine.
func (ns *lossNS) inNS(f func()) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := os.Open("/run/netns/" + ns.name)
		if err != nil {
			done <- err
			return
		}
		defer fd.Close()
		if err := unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", ns.name, err)
			return
		}
		f()
		done <- nil
	}()
	return <-done
}

// TestRefusedSendsAreLoss: with a firewall that refuses 5 % of the UDP we
// send (both sides), a 64 MiB file still arrives whole: EPERM from sendmsg
// is loss for QUIC to recover, not the end of the connection (issue 15,
// item 6). Before the fix it stayed at 0 bytes.
func TestRefusedSendsAreLoss(t *testing.T) {
	ns := newLossNS(t, 5)
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	var sender, receiver *udp.Transport
	if err := ns.inNS(func() {
		sender = newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
		receiver = newTransport(t, bob, contract.AcceptAll{}, udp.Config{})
	}); err != nil {
		t.Fatal(err)
	}
	recv := diskfile.New(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- receiver.Serve(ctx, recv) }()
	defer func() { cancel(); <-served }()

	const size = 64 << 20
	id := domain.NewTransferID()
	path := filepath.Join(t.TempDir(), "refused.bin")
	sum, err := diskfile.WriteRandom(path, size, 6)
	if err != nil {
		t.Fatal(err)
	}
	src, err := diskfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	e := recv.Expect(id, 0, "refused.bin", sum)
	// A bound for a hang, not a performance figure.
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer scancel()
	if err := sender.Send(sctx, peerOf(bob.Identity, receiver), id, 0, src, nil); err != nil {
		t.Fatalf("Send behind a firewall refusing 5 %% of sends: %v (refused so far: %d)", err, ns.refused(t))
	}
	got, err := diskfile.HashFile(recv.Path(e))
	if err != nil || got != sum {
		t.Fatalf("received hash %x (err %v), want %x", got, err, sum)
	}
	n := ns.refused(t)
	t.Logf("the firewall refused %d datagrams; the sender absorbed %d, the receiver %d", n, udp.RefusedSends(sender), udp.RefusedSends(receiver))
	if n == 0 || udp.RefusedSends(sender) == 0 {
		t.Fatal("no send was refused: the test proved nothing")
	}
}
