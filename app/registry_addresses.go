package app

import (
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Reasons the address policy gives for a refused endpoint (stable codes of
// the register response, docs/registry-api.md §3.2).
const (
	// RefusedDNSName: a DNS name; the registry cannot tell whose host it
	// names, and a peer would dial whatever it resolves to.
	RefusedDNSName = "dns_name"
	// RefusedLoopback: a loopback address from a registration that did not
	// come from loopback; a remote peer would dial its own machine.
	RefusedLoopback = "loopback"
	// RefusedUnverifiedPublic: a public address the registry did not see
	// the client use (neither the registration's TCP source nor, so far,
	// the session's STUN mapping). It is kept aside and published once the
	// session's STUN-observed address has the same IP.
	RefusedUnverifiedPublic = "unverified_public"
	// RefusedInvalidAddress: unspecified, multicast or broadcast.
	RefusedInvalidAddress = "invalid_address"
)

// mappingSkew is how far apart the two STUN ports' observations may lie to
// be compared for the NAT mapping: the client asks both at once, so two
// observations further apart belong to different rounds (the mapping may
// have changed in between).
const mappingSkew = 30 * time.Second

// addressPolicy decides which advertised endpoints the registry publishes.
// The registry publishes addresses other clients will dial: a client that
// could make it publish any address could make every peer that messages it
// send a TLS ClientHello (or QUIC Initial) to a third party, a port scan by
// proxy. So it keeps only what it can justify:
//   - the in-memory network's "mem:" addresses (tests);
//   - private (RFC 1918, CGNAT, ULA) and link-local addresses, labelled by
//     scope: a peer on the same LAN needs them, and they do not leave it;
//   - loopback only when the registration itself came from loopback (a
//     registry and its clients on one machine);
//   - a public address only when it is the one the registration came from,
//     or (later) the one STUN observed for the session.
//
// DNS names are refused: what they resolve to is up to whoever registered
// them.
type addressPolicy struct {
	observed netip.Addr // the registration's TCP source, unmapped; invalid when unknown
}

func newAddressPolicy(observedHost string) addressPolicy {
	a, err := netip.ParseAddr(observedHost)
	if err != nil {
		return addressPolicy{}
	}
	return addressPolicy{observed: a.Unmap().WithZone("")}
}

// verdict says whether e may be published: "" keep, otherwise a Refused…
// reason. e has passed ValidateEndpoint.
func (ap addressPolicy) verdict(e string) string {
	if strings.HasPrefix(e, memAddrPrefix) {
		return ""
	}
	ip, ok := endpointIP(e)
	if !ok {
		return RefusedDNSName
	}
	switch domain.ScopeOf(ip) {
	case domain.ScopePrivate, domain.ScopeLinkLocal:
		return ""
	case domain.ScopeLoopback:
		if ap.observed.IsValid() && ap.observed.IsLoopback() {
			return ""
		}
		return RefusedLoopback
	case domain.ScopePublic:
		if ap.observed.IsValid() && ip.Unmap().WithZone("") == ap.observed {
			return ""
		}
		return RefusedUnverifiedPublic
	}
	return RefusedInvalidAddress
}

// apply splits eps into the endpoints to publish, the public ones kept
// aside until STUN justifies them, and the refused ones (which include the
// kept-aside ones, so the client learns of them).
func (ap addressPolicy) apply(eps domain.Endpoints) (host, pending domain.Endpoints, refused []ports.RefusedEndpoint) {
	split := func(name string, list []string) (keep, later []string) {
		for i, e := range list {
			reason := ap.verdict(e)
			switch reason {
			case "":
				keep = append(keep, e)
				continue
			case RefusedUnverifiedPublic:
				later = append(later, e)
			}
			refused = append(refused, ports.RefusedEndpoint{List: name, Index: i, Endpoint: e, Reason: reason})
		}
		return keep, later
	}
	host.Link, pending.Link = split("link", eps.Link)
	host.File, pending.File = split("file", eps.File)
	return host, pending, refused
}

// endpointIP is the IP of a "host:port" endpoint, false for a DNS name.
func endpointIP(e string) (netip.Addr, bool) {
	h, _, err := net.SplitHostPort(e)
	if err != nil {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(h)
	return ip, err == nil
}

// derivePublished builds what the registry publishes for a session: the
// host endpoints, pending public ones whose IP STUN has since observed, and
// the server-reflexive address, with the typed candidate view and the NAT
// mapping.
//
// The server-reflexive address is the one the first STUN port saw (the
// second one's when the first has not answered): a stable choice, so an
// endpoint-dependent NAT does not make it flip every round. The mapping is
// endpoint-independent when both ports saw the same address within
// mappingSkew of each other, endpoint-dependent when they saw different
// ones, none when the observed address is one the client advertised, and
// unknown otherwise.
func derivePublished(p ports.Presence) domain.Endpoints {
	srflx, nat := reflexive(p.Mapped)
	out := domain.Endpoints{
		Link: append([]string(nil), p.Host.Link...),
		File: append([]string(nil), p.Host.File...),
	}
	if srflx.IsValid() {
		admit := func(dst []string, pending []string) []string {
			for _, e := range pending {
				if ip, ok := endpointIP(e); ok && ip.Unmap().WithZone("") == srflx.Addr() {
					dst = append(dst, e)
				}
			}
			return dst
		}
		out.Link = admit(out.Link, p.Pending.Link)
		out.File = admit(out.File, p.Pending.File)
		for _, e := range out.File {
			if ap, err := netip.ParseAddrPort(e); err == nil && netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()) == srflx {
				nat, srflx = domain.NATNone, netip.AddrPort{}
				break
			}
		}
	}
	out.NAT = nat
	add := func(typ domain.CandidateType, netw string, list []string) {
		for _, e := range list {
			c := domain.Candidate{Type: typ, Net: netw, Addr: e}
			if strings.HasPrefix(e, memAddrPrefix) {
				c.Net = "mem"
			} else if ip, ok := endpointIP(e); ok {
				c.Scope = domain.ScopeOf(ip)
			}
			out.Candidates = append(out.Candidates, c)
		}
	}
	add(domain.CandidateHost, "tcp", out.Link)
	add(domain.CandidateHost, "udp", out.File)
	if srflx.IsValid() {
		s := srflx.String()
		out.File = append(out.File, s)
		add(domain.CandidateSrflx, "udp", []string{s})
	}
	return out
}

// reflexive picks the server-reflexive address and the mapping behaviour
// from the two ports' observations (see derivePublished). nat is
// NATUnknown unless both ports were observed close together.
func reflexive(m [ports.STUNServerPorts]ports.MappedAddr) (netip.AddrPort, domain.NATMapping) {
	a, b := m[0], m[1]
	norm := func(x netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(x.Addr().Unmap().WithZone(""), x.Port())
	}
	switch {
	case !a.Addr.IsValid() && !b.Addr.IsValid():
		return netip.AddrPort{}, domain.NATUnknown
	case !b.Addr.IsValid():
		return norm(a.Addr), domain.NATUnknown
	case !a.Addr.IsValid():
		return norm(b.Addr), domain.NATUnknown
	}
	d := a.At.Sub(b.At)
	if d < 0 {
		d = -d
	}
	if d > mappingSkew {
		if b.At.After(a.At) {
			return norm(b.Addr), domain.NATUnknown
		}
		return norm(a.Addr), domain.NATUnknown
	}
	if norm(a.Addr) == norm(b.Addr) {
		return norm(a.Addr), domain.NATEndpointIndependent
	}
	return norm(a.Addr), domain.NATEndpointDependent
}
