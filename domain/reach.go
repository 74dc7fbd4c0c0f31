package domain

import (
	"fmt"
	"net/netip"
	"time"
)

// NATMapping is how a NAT in front of a peer maps its UDP socket (RFC 4787
// §4.1), as measured by asking two ports of the registry's STUN server from
// the same socket.
type NATMapping string

// NAT mapping behaviours.
const (
	// NATUnknown: not measured (no STUN server answered, or only one port).
	NATUnknown NATMapping = ""
	// NATNone: the mapped address equals a local address (no NAT).
	NATNone NATMapping = "none"
	// NATEndpointIndependent: both server ports saw the same mapped address
	// ("cone"); hole punching works towards the reflexive address.
	NATEndpointIndependent NATMapping = "endpoint-independent"
	// NATEndpointDependent: the two ports saw different mapped addresses
	// ("symmetric"); the peer must guess or be reached through a relay.
	NATEndpointDependent NATMapping = "endpoint-dependent"
)

// Describe is the mapping behaviour in words for the user, with what it
// means for reaching peers.
func (n NATMapping) Describe() string {
	switch n {
	case NATNone:
		return "none: this host has a public address"
	case NATEndpointIndependent:
		return "endpoint-independent mapping (\"cone\"): direct connections by hole punching"
	case NATEndpointDependent:
		return "endpoint-dependent mapping (\"symmetric\"): direct to peers behind a cone NAT, relayed otherwise"
	}
	return "unknown: no STUN answer from the registry (yet)"
}

// PathKind says how a peer is reached, as the user sees it.
type PathKind string

// Path kinds; "" means no path now.
const (
	PathNone    PathKind = ""
	PathLAN     PathKind = "lan"     // a private or loopback address of the peer, no NAT between
	PathDirect  PathKind = "direct"  // a public or reflexive address (maybe punched through NATs)
	PathRelayed PathKind = "relayed" // through a TURN relay, which sees only ciphertext
)

// Transport names what carries the message link: TCP, or a QUIC stream.
type Transport string

// Transports of a path.
const (
	TransportTCP    Transport = "tcp"
	TransportQUIC   Transport = "quic"
	TransportMemory Transport = "memory" // adapters/memory, tests only
)

// Path is how a link to a peer runs now: its kind, what carries it, the
// remote address it uses and the last measured round-trip time (0 when
// unknown).
type Path struct {
	Kind      PathKind
	Transport Transport
	Remote    string
	RTT       time.Duration
}

// IsZero reports whether there is no path.
func (p Path) IsZero() bool { return p.Kind == PathNone }

// String is the path as a short label: "direct quic 12ms".
func (p Path) String() string {
	if p.IsZero() {
		return "no path"
	}
	s := fmt.Sprintf("%s %s", p.Kind, p.Transport)
	if p.RTT > 0 {
		s += " " + p.RTT.Round(time.Millisecond).String()
	}
	return s
}

// AddrScope classifies an IP address for the candidate rules of
// docs/reachability.md: what a registry may store and what a peer may dial.
type AddrScope string

// Address scopes.
const (
	ScopeLoopback  AddrScope = "loopback"   // 127.0.0.0/8, ::1
	ScopePrivate   AddrScope = "private"    // RFC 1918, RFC 6598 (CGNAT), RFC 4193 (ULA)
	ScopeLinkLocal AddrScope = "link-local" // 169.254.0.0/16, fe80::/10
	ScopePublic    AddrScope = "public"     // anything else that is a unicast address
	ScopeInvalid   AddrScope = "invalid"    // unspecified, multicast, broadcast
)

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// ScopeOf classifies ip (an IPv4-mapped IPv6 address counts as IPv4).
func ScopeOf(ip netip.Addr) AddrScope {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return ScopeInvalid
	case ip.IsLoopback():
		return ScopeLoopback
	case ip.IsLinkLocalUnicast():
		return ScopeLinkLocal
	case ip.IsPrivate() || cgnat.Contains(ip):
		return ScopePrivate
	case ip.IsGlobalUnicast():
		return ScopePublic
	}
	return ScopeInvalid
}

// CandidateType is the ICE type of a candidate address (RFC 8445 §5.1.1).
type CandidateType string

// Candidate types.
const (
	// CandidateHost is an address the peer advertised from its own
	// interfaces (kept by the registry's address policy).
	CandidateHost CandidateType = "host"
	// CandidateSrflx is the server-reflexive address the registry observed
	// by STUN: the NAT's mapping of the peer's QUIC socket.
	CandidateSrflx CandidateType = "srflx"
	// CandidateRelay is an address allocated on a TURN relay.
	CandidateRelay CandidateType = "relay"
)

// Candidate is one typed address of a peer: its type, the network it is
// for ("tcp" for the message link, "udp" for QUIC, "mem" for the in-memory
// network), the address and its scope (empty for non-IP addresses).
type Candidate struct {
	Type  CandidateType
	Net   string
	Addr  string
	Scope AddrScope
}

// String is the candidate as `chatx doctor` prints it: "srflx udp 203.0.113.9:41000 (public)".
func (c Candidate) String() string {
	s := fmt.Sprintf("%s %s %s", c.Type, c.Net, c.Addr)
	if c.Scope != "" {
		s += " (" + string(c.Scope) + ")"
	}
	return s
}
