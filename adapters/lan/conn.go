package lan

import (
	"context"
	"net/netip"
)

// Interface is a network interface announcements leave on and arrive by.
type Interface struct {
	Name     string
	Index    int
	Loopback bool
	Addrs    []netip.Addr // its unicast addresses (zone-less)
}

// Received is one datagram and where it came from.
type Received struct {
	Data []byte
	Src  netip.Addr // the sender's source address
	Via  Interface  // the interface it arrived on (Index 0 when unknown)
}

// Conn is the datagram socket of local discovery: the multicast socket of
// NewConn, or a fake in tests. Send and Receive may be called concurrently.
type Conn interface {
	// Interfaces lists the interfaces to announce on now (up, multicast-
	// capable or loopback), joining the discovery groups on new ones.
	Interfaces() ([]Interface, error)
	// Send sends one datagram to the discovery groups on via, for every
	// address family via has an address of.
	Send(b []byte, via Interface) error
	// Receive returns the next datagram, ctx's error, or net.ErrClosed
	// after Close.
	Receive(ctx context.Context) (Received, error)
	// Close closes the socket(s); Receive returns net.ErrClosed after.
	Close() error
}
