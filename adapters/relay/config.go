package relay

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ListenAddr is where the TURN server listens, UDP and TCP on one port
// ("host:port"; port 0 picks one free for both).
type ListenAddr string

// Rate is a bandwidth in bits per second; negative means unlimited and
// zero (in a Config) the default. As a flag it reads "10M", "512k",
// "1.5G", a plain number, or "0" / "unlimited".
type Rate int64

// Unlimited is the Rate that never drops.
const Unlimited Rate = -1

// Set parses s (flag.Value).
func (r *Rate) Set(s string) error {
	if s == "unlimited" {
		*r = Unlimited
		return nil
	}
	mult := 1.0
	num := strings.TrimSuffix(strings.TrimSpace(s), "bit/s")
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'k', 'K':
			mult, num = 1e3, num[:n-1]
		case 'm', 'M':
			mult, num = 1e6, num[:n-1]
		case 'g', 'G':
			mult, num = 1e9, num[:n-1]
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || v*mult > 1e12 {
		return fmt.Errorf("rate %q: want bits per second like 10M, 512k or 0 for unlimited", s)
	}
	*r = Rate(v * mult)
	if *r == 0 {
		*r = Unlimited
	}
	return nil
}

func (r Rate) String() string {
	switch {
	case r < 0:
		return "unlimited"
	case r == 0:
		return "0"
	case r%1e9 == 0:
		return strconv.FormatInt(int64(r/1e9), 10) + "G"
	case r%1e6 == 0:
		return strconv.FormatInt(int64(r/1e6), 10) + "M"
	case r%1e3 == 0:
		return strconv.FormatInt(int64(r/1e3), 10) + "k"
	}
	return strconv.FormatInt(int64(r), 10)
}

// PortRange is the range relayed addresses are taken from, "MIN-MAX" as a
// flag.
type PortRange struct{ Min, Max int }

// Set parses "MIN-MAX" (flag.Value).
func (p *PortRange) Set(s string) error {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return fmt.Errorf("port range %q: want MIN-MAX within 1-65535", s)
	}
	p.Min, p.Max = a, b
	return nil
}

func (p PortRange) String() string { return fmt.Sprintf("%d-%d", p.Min, p.Max) }

// Prefixes is a comma-separated list of CIDR networks as a flag.
type Prefixes []netip.Prefix

// Set parses "10.0.0.0/8,192.168.0.0/16" (flag.Value).
func (p *Prefixes) Set(s string) error {
	var out Prefixes
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(f)
		if err != nil {
			return fmt.Errorf("network %q: want CIDR like 10.0.0.0/8", f)
		}
		out = append(out, pfx.Masked())
	}
	*p = out
	return nil
}

func (p Prefixes) String() string {
	parts := make([]string, len(p))
	for i, pfx := range p {
		parts[i] = pfx.String()
	}
	return strings.Join(parts, ",")
}

// Config configures the TURN server. The zero value is usable apart from
// Disabled: every zero field takes the default documented beside it.
type Config struct {
	// Disabled turns the relay off (--relay=false): New returns a nil
	// *Server, whose URLs and Secret are empty.
	Disabled bool
	// Listen is the UDP and TCP address (default ":3478").
	Listen ListenAddr
	// RelayIP is the IPv4 address put in XOR-RELAYED-ADDRESS and in the
	// TURN URLs, the one peers send to. Default: the listen IP, or when
	// that is unspecified the first non-loopback IPv4 address of an
	// interface that is up (127.0.0.1 when there is none). Set it to the
	// public address behind a 1:1 NAT (a cloud VM's elastic IP).
	RelayIP string
	// Ports is where relayed addresses are taken from (default
	// 49152-65535).
	Ports PortRange
	// Rate caps each allocation, per direction, in bits per second
	// (default 10M); datagrams beyond it are dropped (policed, not
	// queued). Negative means unlimited.
	Rate Rate
	// UserQuota is how many allocations one user (the name in the TURN
	// username) may hold at once (default 4); beyond it: 486.
	UserQuota int
	// MaxAllocations caps allocations over all users (default 1024);
	// beyond it: 508.
	MaxAllocations int
	// MaxTCPConns caps open TURN-over-TCP connections (default 1024; 32
	// from one IP address; one silent for 10 minutes is closed).
	MaxTCPConns int
	// DeniedPeers are networks no permission is granted to, beyond the
	// built-in refusals (multicast, unspecified, broadcast, loopback on a
	// non-loopback relay): list the relay host's private networks here
	// when peers are never on them (coturn's denied-peer-ip).
	DeniedPeers Prefixes
	// Realm is the TURN realm (default "chatx").
	Realm string
	// CredentialTTL is how long credentials made for this server should
	// live (default 1 h): the registry's hand-out uses it. It bounds when
	// an allocation can be made; the owner of a live allocation keeps it
	// past the expiry (see authenticate).
	CredentialTTL time.Duration

	// tap, set by tests only (export_test.go), sees every datagram the
	// server relays, in both directions.
	tap func(toPeer bool, b []byte)
	// now is the clock of the token buckets (tests).
	now func() time.Time
	// tcpIdle overrides the idle timeout of TURN-over-TCP connections
	// (tests).
	tcpIdle time.Duration
}

// Defaults.
const (
	DefaultListen              = ListenAddr(":3478")
	DefaultRate           Rate = 10_000_000
	DefaultUserQuota           = 4
	DefaultMaxAllocations      = 1024
	DefaultMaxTCPConns         = 1024
	DefaultRealm               = "chatx"
	DefaultCredentialTTL       = 12 * time.Hour
	defaultMinPort             = 49152
	defaultMaxPort             = 65535
)

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Ports.Min == 0 && c.Ports.Max == 0 {
		c.Ports = PortRange{defaultMinPort, defaultMaxPort}
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.UserQuota <= 0 {
		c.UserQuota = DefaultUserQuota
	}
	if c.MaxAllocations <= 0 {
		c.MaxAllocations = DefaultMaxAllocations
	}
	if c.MaxTCPConns <= 0 {
		c.MaxTCPConns = DefaultMaxTCPConns
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.CredentialTTL <= 0 {
		c.CredentialTTL = DefaultCredentialTTL
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}
