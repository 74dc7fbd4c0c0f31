// Package netlab builds a small model of the internet out of Linux network
// namespaces for the end-to-end tests: an "internet" namespace bridging two
// public ranges (198.51.100.0/24 for servers and public hosts, 203.0.113.0/24
// for the home routers' WAN side — both documentation ranges, RFC 5737),
// public hosts on it, and homes: a router namespace doing NAT with nftables
// and a firewall that drops unsolicited inbound packets, as home routers do,
// with one or more hosts on a private LAN (10.N.0.0/24) behind it.
//
//	public host 198.51.100.10 ─┐                    ┌─ 10.1.0.10 host
//	registry    198.51.100.2  ─┤ inet (bridge br0)  │
//	                           ├─ 203.0.113.11 wan ─ router 1 ── lan0 10.1.0.1
//	                           └─ 203.0.113.12 wan ─ router 2 ── lan0 10.2.0.1 ── 10.2.0.10 host
//
// It is test-only: nothing outside e2e imports it. Every namespace a Lab
// creates is deleted in t.Cleanup; processes started in them belong to the
// caller (use Host.Command and stop them with their exec.Cmd).
package netlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// NAT is how a home router maps its LAN's outgoing flows to its WAN address.
type NAT string

const (
	// Cone maps with nftables `masquerade`: Linux keeps the source port
	// whenever it is free, so one LAN socket appears at one WAN address and
	// port towards every destination (endpoint-independent mapping, RFC
	// 4787). Filtering stays address-and-port dependent (conntrack plus the
	// forward chain's drop), a "port-restricted cone".
	Cone NAT = "masquerade"
	// Symmetric maps with `masquerade fully-random`: every new flow (each
	// destination address and port) gets a random WAN port
	// (endpoint-dependent mapping).
	Symmetric NAT = "masquerade fully-random"
)

// HomeOptions shape a home router.
type HomeOptions struct {
	NAT NAT
	// UDPLossPercent drops that share of the UDP packets the router forwards,
	// in each direction, at random (nftables numgen; netem is not needed).
	UDPLossPercent int
	// BlockUDP drops every UDP packet the router would forward, both ways:
	// the home can reach the internet over TCP only.
	BlockUDP bool
}

// Lab is one private internet. Make one per test with New.
type Lab struct {
	t      testing.TB
	prefix string
	inet   string

	mu         sync.Mutex
	namespaces []string
	nextPublic int // last host byte used in 198.51.100.0/24
	nextHome   int // homes made so far
}

// Host is a namespace with one address: a public host or a LAN host.
type Host struct {
	Name string     // the caller's label, e.g. "alice"
	NS   string     // the network namespace
	IP   netip.Addr // its only non-loopback address
	Home *Home      // the home whose LAN it is on; nil for a public host
}

// Home is a router and the LAN behind it.
type Home struct {
	lab    *Lab
	Router string     // the router's namespace
	WAN    netip.Addr // its public address
	LAN    netip.Prefix
	hosts  int
}

var (
	availOnce sync.Once
	availErr  error
	counter   atomic.Int64
)

// Available reports why network namespace labs cannot be built on this
// machine (nil when they can): not root, `ip` or `nft` missing, or the
// kernel refusing a namespace, a veth pair or an nftables table.
func Available() error {
	availOnce.Do(func() { availErr = probe() })
	return availErr
}

func probe() error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed (apt-get install iproute2 nftables)", tool)
		}
	}
	ns := fmt.Sprintf("chatxlab-%d-probe", os.Getpid())
	if err := run("ip", "netns", "add", ns); err != nil {
		return fmt.Errorf("cannot create a network namespace: %w", err)
	}
	defer func() { _ = run("ip", "netns", "del", ns) }()
	if err := run("ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1"); err != nil {
		return fmt.Errorf("cannot create a veth pair: %w", err)
	}
	if err := nft(ns, "table inet probe { chain c { type filter hook forward priority 0; }; }"); err != nil {
		return fmt.Errorf("cannot load nftables rules: %w", err)
	}
	return nil
}

// New builds an empty internet, or skips the test with the reason when the
// machine cannot (see Available).
func New(t testing.TB) *Lab {
	t.Helper()
	return NewNamed(t, "chatxlab")
}

// NewNamed is New with namespaces named PREFIX-PID-N-… instead of
// chatxlab-PID-N-… (the soak uses "soak"), so that a run's namespaces can be
// told apart from the tests'. Namespaces of that prefix whose PID is gone are
// removed first.
func NewNamed(t testing.TB, prefix string) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("network namespace tests skipped: %v", err)
	}
	removeStale(prefix)
	l := &Lab{t: t, prefix: fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), counter.Add(1)), nextPublic: 9}
	t.Cleanup(l.close)
	l.inet = l.newNS("inet")
	l.must(run("ip", "-n", l.inet, "link", "add", "br0", "type", "bridge"))
	l.must(run("ip", "-n", l.inet, "addr", "add", "198.51.100.1/24", "dev", "br0"))
	l.must(run("ip", "-n", l.inet, "addr", "add", "203.0.113.1/24", "dev", "br0"))
	l.must(run("ip", "-n", l.inet, "link", "set", "br0", "up"))
	l.must(sysctl(l.inet, "net.ipv4.ip_forward", "1"))
	// Both ranges share br0: routing between them is "on a stick", which
	// would make the kernel send ICMP redirects.
	l.must(sysctl(l.inet, "net.ipv4.conf.all.send_redirects", "0"))
	l.must(sysctl(l.inet, "net.ipv4.conf.br0.send_redirects", "0"))
	return l
}

// Public adds a host on a public address of 198.51.100.0/24.
func (l *Lab) Public(name string) *Host {
	l.mu.Lock()
	l.nextPublic++
	ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(l.nextPublic)})
	l.mu.Unlock()
	return l.publicAt(name, ip)
}

// Server adds a host at a given public address (e.g. 198.51.100.2 for the
// registry), which must be in 198.51.100.0/24 and not used yet. A server
// counts the bytes it receives (Host.InputBytes), so that a test can tell
// whether a relay on it carried a transfer.
func (l *Lab) Server(name string, ip netip.Addr) *Host {
	h := l.publicAt(name, ip)
	l.must(nft(h.NS, `table inet netlab {
	counter input_bytes { }
	chain input {
		type filter hook input priority filter - 10; policy accept;
		counter name "input_bytes"
	}
}
`))
	return h
}

// InputBytes is how many bytes a Server host has received so far (IP
// packets, headers included).
func (h *Host) InputBytes() (uint64, error) { return counterBytes(h.NS, "netlab", "input_bytes") }

// WANOutBytes is how many bytes the home's router has forwarded from its
// LAN to the internet so far (IP packets, headers included).
func (h *Home) WANOutBytes() (uint64, error) { return counterBytes(h.Router, "filter", "wan_out") }

// WANInDroppedPackets is how many unsolicited packets from the internet
// the home's firewall has dropped so far (to the router or to the LAN).
func (h *Home) WANInDroppedPackets() (uint64, error) {
	return counterValue(h.Router, "filter", "wan_in_dropped", "packets")
}

func counterBytes(ns, table, name string) (uint64, error) {
	return counterValue(ns, table, name, "bytes")
}

func counterValue(ns, table, name, field string) (uint64, error) {
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-j", "list", "counter", "inet", table, name).Output()
	if err != nil {
		return 0, fmt.Errorf("read counter %s in %s: %w", name, ns, err)
	}
	var list struct {
		Nftables []struct {
			Counter *struct {
				Bytes   uint64 `json:"bytes"`
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return 0, fmt.Errorf("read counter %s in %s: %w", name, ns, err)
	}
	for _, e := range list.Nftables {
		if e.Counter != nil {
			if field == "packets" {
				return e.Counter.Packets, nil
			}
			return e.Counter.Bytes, nil
		}
	}
	return 0, fmt.Errorf("read counter %s in %s: not found", name, ns)
}

func (l *Lab) publicAt(name string, ip netip.Addr) *Host {
	ns := l.newNS(name)
	l.attach(ns, "eth0", netip.PrefixFrom(ip, 24), netip.MustParseAddr("198.51.100.1"))
	return &Host{Name: name, NS: ns, IP: ip}
}

// attach links namespace ns to the internet's bridge with a veth pair, gives
// it addr and a default route via gw.
func (l *Lab) attach(ns, dev string, addr netip.Prefix, gw netip.Addr) {
	port := fmt.Sprintf("p%d", l.portSeq())
	l.must(run("ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", port, "netns", l.inet))
	l.must(run("ip", "-n", l.inet, "link", "set", port, "master", "br0", "up"))
	l.must(run("ip", "-n", ns, "addr", "add", addr.String(), "dev", dev))
	l.must(run("ip", "-n", ns, "link", "set", dev, "up"))
	l.must(run("ip", "-n", ns, "route", "add", "default", "via", gw.String()))
}

var portSeq atomic.Int64

func (l *Lab) portSeq() int64 { return portSeq.Add(1) }

// Home adds a router with a public WAN address in 203.0.113.0/24 and an
// empty LAN 10.N.0.0/24 behind it; add hosts with Home.Host.
func (l *Lab) Home(name string, o HomeOptions) *Home {
	if o.NAT == "" {
		o.NAT = Cone
	}
	l.mu.Lock()
	l.nextHome++
	n := l.nextHome
	l.mu.Unlock()
	h := &Home{lab: l, WAN: netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + n)}),
		LAN: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n), 0, 0}), 24)}
	h.Router = l.newNS(name + "-router")
	l.attach(h.Router, "wan", netip.PrefixFrom(h.WAN, 24), netip.MustParseAddr("203.0.113.1"))
	l.must(run("ip", "-n", h.Router, "link", "add", "lan0", "type", "bridge"))
	l.must(run("ip", "-n", h.Router, "addr", "add", h.gateway().String()+"/24", "dev", "lan0"))
	l.must(run("ip", "-n", h.Router, "link", "set", "lan0", "up"))
	l.must(sysctl(h.Router, "net.ipv4.ip_forward", "1"))
	l.must(nft(h.Router, RouterRules(o)))
	return h
}

func (h *Home) gateway() netip.Addr {
	a := h.LAN.Addr().As4()
	a[3] = 1
	return netip.AddrFrom4(a)
}

// Host adds a host on the home's LAN (10.N.0.10, .11, ...).
func (h *Home) Host(name string) *Host {
	l := h.lab
	l.mu.Lock()
	h.hosts++
	a := h.LAN.Addr().As4()
	a[3] = byte(9 + h.hosts)
	l.mu.Unlock()
	ip := netip.AddrFrom4(a)
	ns := l.newNS(name)
	port := fmt.Sprintf("h%d", l.portSeq())
	l.must(run("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", h.Router))
	l.must(run("ip", "-n", h.Router, "link", "set", port, "master", "lan0", "up"))
	l.must(run("ip", "-n", ns, "addr", "add", netip.PrefixFrom(ip, 24).String(), "dev", "eth0"))
	l.must(run("ip", "-n", ns, "link", "set", "eth0", "up"))
	l.must(run("ip", "-n", ns, "route", "add", "default", "via", h.gateway().String()))
	return &Host{Name: name, NS: ns, IP: ip, Home: h}
}

// RouterRules is the nftables ruleset of a home router: NAT of everything
// leaving by "wan", a firewall that lets in from "wan" only what answers a
// flow the LAN started (for the router itself and for the LAN), the
// optional UDP loss or UDP block, and a counter of what leaves the LAN.
func RouterRules(o HomeOptions) string {
	var udp strings.Builder
	if o.BlockUDP {
		udp.WriteString("\t\tmeta l4proto udp drop\n")
	} else if o.UDPLossPercent > 0 {
		fmt.Fprintf(&udp, "\t\tmeta l4proto udp numgen random mod 100 < %d drop\n", o.UDPLossPercent)
	}
	return fmt.Sprintf(`table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" %s
	}
}
table inet filter {
	counter wan_out { }
	counter wan_in_dropped { }
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "wan" ct state established,related accept
		iifname "wan" counter name "wan_in_dropped" drop
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		oifname "wan" counter name "wan_out"
%s		iifname "wan" ct state established,related accept
		iifname "wan" counter name "wan_in_dropped" drop
	}
}
`, o.NAT, udp.String())
}

// Command runs name in the host's namespace (via `ip netns exec`, which
// execs it: the process's PID is the command's own).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Wrap is the argv prefix that runs a command in the host's namespace.
func (h *Host) Wrap() []string { return []string{"ip", "netns", "exec", h.NS} }

func (l *Lab) newNS(role string) string {
	l.mu.Lock()
	ns := fmt.Sprintf("%s-%d-%s", l.prefix, len(l.namespaces), role)
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
	l.must(run("ip", "netns", "add", ns))
	l.must(run("ip", "-n", ns, "link", "set", "lo", "up"))
	return ns
}

// String is the nftables statement.
func (n NAT) String() string { return string(n) }

func (l *Lab) must(err error) {
	if err != nil {
		l.t.Helper()
		l.t.Fatalf("netlab: %v", err)
	}
}

// close deletes the lab's namespaces (their veths go with them).
func (l *Lab) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.namespaces) - 1; i >= 0; i-- {
		if err := run("ip", "netns", "del", l.namespaces[i]); err != nil {
			l.t.Logf("netlab cleanup: %v", err)
		}
	}
	l.namespaces = nil
}

var staleDone sync.Map // prefix → struct{}

// removeStale deletes namespaces left by an earlier test process of ours
// that was killed before its cleanup ran (named PREFIX-PID-…, PID gone).
func removeStale(prefix string) {
	if _, done := staleDone.LoadOrStore(prefix, struct{}{}); done {
		return
	}
	{
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			rest, ok := strings.CutPrefix(e.Name(), prefix+"-")
			if !ok {
				continue
			}
			pidText, _, _ := strings.Cut(rest, "-")
			pid, err := strconv.Atoi(pidText)
			if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
				continue
			}
			_ = run("ip", "netns", "del", e.Name())
		}
	}
}

func sysctl(ns, key, value string) error {
	return run("ip", "netns", "exec", ns, "sysctl", "-qw", key+"="+value)
}

// Nft loads an nftables ruleset (the text `nft -f` reads) into namespace ns,
// e.g. a fault of the soak on a home router (Home.Router) or a host (Host.NS).
func Nft(ns, rules string) error { return nft(ns, rules) }

func nft(ns, rules string) error {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft in %s: %w: %s", ns, err, strings.TrimSpace(out.String()))
	}
	return nil
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
