package tcp

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/localnet"
	"github.com/chatx/chatx/ports"
)

var _ ports.PathReporter = (*Link)(nil)

// tcpPath labels a direct TCP connection by the scope of the remote
// address: loopback, private and link-local addresses are the LAN, the rest
// is direct.
func tcpPath(remote net.Addr) domain.Path {
	p := domain.Path{Kind: domain.PathDirect, Transport: domain.TransportTCP}
	if remote == nil {
		return p
	}
	p.Remote = remote.String()
	if ap, err := netip.ParseAddrPort(remote.String()); err == nil {
		switch domain.ScopeOf(ap.Addr()) {
		case domain.ScopeLoopback, domain.ScopePrivate, domain.ScopeLinkLocal:
			p.Kind = domain.PathLAN
		}
	}
	return p
}

// pathOf is the path of an accepted connection: a QUIC stream knows its
// own, a TCP connection is labelled by its remote address.
func pathOf(raw net.Conn) domain.Path {
	if pc, ok := raw.(ports.PathConn); ok {
		return pc.Path()
	}
	return tcpPath(raw.RemoteAddr())
}

// dialable keeps the link endpoints worth a TCP dial, in order: public and
// loopback addresses, host names, and private or link-local addresses that
// fall inside one of our own interfaces' networks. A private address of
// another network is most likely the peer's home LAN behind its NAT: a dial
// would only reach whatever host has that address on ours (a printer, the
// router's web page), so it is left to the QUIC path, whose signed probes
// prove the peer before any handshake is sent (docs/reachability.md).
func dialable(eps []string, local []netip.Prefix) []string {
	var out []string
	for _, ep := range eps {
		host, port, err := net.SplitHostPort(ep)
		if err != nil {
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			continue
		}
		ip, err := netip.ParseAddr(host)
		if err != nil { // a host name: the resolver decides
			out = append(out, ep)
			continue
		}
		switch domain.ScopeOf(ip) {
		case domain.ScopeInvalid:
			continue
		case domain.ScopePrivate, domain.ScopeLinkLocal:
			if !localnet.Contains(local, ip) {
				continue
			}
		}
		out = append(out, ep)
	}
	return out
}
