package tcp

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
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
			if !inAny(ip.WithZone(""), local) {
				continue
			}
		}
		out = append(out, ep)
	}
	return out
}

func inAny(ip netip.Addr, nets []netip.Prefix) bool {
	ip = ip.Unmap()
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// localNets caches this host's interface networks for a few seconds.
type localNets struct {
	mu   sync.Mutex
	at   time.Time
	nets []netip.Prefix
}

func (n *localNets) get() []netip.Prefix {
	n.mu.Lock()
	defer n.mu.Unlock()
	if time.Since(n.at) < 5*time.Second && n.at != (time.Time{}) {
		return n.nets
	}
	n.nets, n.at = interfaceNets(), time.Now()
	return n.nets
}

func interfaceNets() []netip.Prefix {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ones, _ := ipn.Mask.Size()
		ip = ip.Unmap()
		if ip.Is4() && ones > 32 {
			ones -= 96
		}
		if p, err := ip.Prefix(ones); err == nil {
			out = append(out, p)
		}
	}
	return out
}
