// Package localnet tells which networks this host's interfaces are on, for
// the peer transports' candidate rules (docs/reachability.md §2): a private
// address is worth a dial only inside one of them. It must not decide
// anything else.
package localnet

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Prefixes are the networks of this host's interface addresses (IPv4 ones
// unmapped), or nil when the host cannot list them.
func Prefixes() []netip.Prefix {
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
		ones, bits := ipn.Mask.Size()
		ip = ip.Unmap()
		ones -= bits - ip.BitLen() // a 16-byte mask of an IPv4 address
		if p, err := ip.Prefix(ones); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Contains reports whether ip (zone and IPv4 mapping ignored) lies in one of nets.
func Contains(nets []netip.Prefix, ip netip.Addr) bool {
	ip = ip.WithZone("").Unmap()
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// Cache keeps Prefixes for a few seconds: dials ask often, interfaces
// change rarely. The zero Cache is ready.
type Cache struct {
	mu   sync.Mutex
	at   time.Time
	nets []netip.Prefix
}

// Get returns the current networks.
func (c *Cache) Get() []netip.Prefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || time.Since(c.at) >= 5*time.Second {
		c.nets, c.at = Prefixes(), time.Now()
	}
	return c.nets
}
