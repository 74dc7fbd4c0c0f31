package e2e_test

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/e2e/internal/netlab"
)

var uclientBytes = regexp.MustCompile(`tot_send_bytes ~ ([0-9]+), tot_recv_bytes ~ ([0-9]+)`)

// lastTotals is uclient's final count of bytes sent and received (it
// prints a running count before).
func lastTotals(out string) []string {
	all := uclientBytes.FindAllStringSubmatch(out, -1)
	if len(all) == 0 {
		return nil
	}
	return all[len(all)-1]
}

// TestCoturnRelaysWithRESTCredentials checks the coturn the reachability
// matrix starts (startCoturn), before chatx uses it: coturn's own test
// client (turnutils_uclient) allocates with TURN REST credentials derived
// from the shared secret, from behind a symmetric NAT over UDP and from a
// home that blocks UDP over TCP, and an echo peer's answers come back
// through the relay byte for byte; a wrong secret gets no allocation.
func TestCoturnRelaysWithRESTCredentials(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Skipf("network namespace tests skipped: %v", err)
	}
	t.Parallel()
	for _, tool := range []string{"turnserver", "turnutils_uclient", "turnutils_peer"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("coturn (%s) not installed: apt-get install coturn", tool)
		}
	}
	lab := netlab.New(t)
	turnHost := lab.Server("turn", netip.MustParseAddr("198.51.100.3"))
	secretFile := startCoturn(t, turnHost)
	raw, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(raw))
	peer := lab.Public("peer")
	echo := peer.Command("turnutils_peer", "-L", peer.IP.String(), "-p", "3480")
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = echo.Process.Kill(); _ = echo.Wait() })

	uclient := func(h *netlab.Host, secret string, tcp bool) (string, error) {
		args := []string{"-W", secret, "-u", "alice", "-e", peer.IP.String(), "-r", "3480", "-n", "20", "-X"}
		if tcp {
			args = append(args, "-t")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, "turnutils_uclient"}, append(args, turnHost.IP.String())...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, c := range []struct {
		name string
		home netlab.HomeOptions
		tcp  bool
	}{
		{"UDP from behind a symmetric NAT", netlab.HomeOptions{NAT: netlab.Symmetric}, false},
		{"TCP from a home without UDP", netlab.HomeOptions{NAT: netlab.Cone, BlockUDP: true}, true},
	} {
		h := lab.Home("home", c.home).Host("client")
		out, err := uclient(h, secret, c.tcp)
		m := lastTotals(out)
		if err != nil || m == nil {
			t.Errorf("%s: uclient: %v\n%s", c.name, err, out)
			continue
		}
		sent, _ := strconv.Atoi(m[1])
		got, _ := strconv.Atoi(m[2])
		if sent == 0 || got != sent {
			t.Errorf("%s: sent %d bytes through the relay, %d came back\n%s", c.name, sent, got, out)
		}
	}
	h := lab.Home("wrong", netlab.HomeOptions{NAT: netlab.Cone}).Host("intruder")
	out, _ := uclient(h, "not-the-secret", false)
	if m := lastTotals(out); m != nil && m[2] != "0" {
		t.Errorf("a wrong secret relayed %s bytes:\n%s", m[2], out)
	}
	if !strings.Contains(out, "Cannot complete Allocation") {
		t.Errorf("a wrong secret got an allocation:\n%s", out)
	}
}
