package relay

import (
	"net"
	"sync"
)

// relayConn is one allocation's relayed socket: what peers send to the
// relayed address is read here, what the client relays to peers is written
// here. It polices each direction with its own token bucket, counts bytes,
// refuses to send into the server's own TURN port, and gives the total cap
// its slot back on Close.
//
// Permissions are not checked here: pion checks them on both paths (Send
// indications and ChannelData need a permission for the destination;
// datagrams from a peer without one are dropped before they reach the
// client).
type relayConn struct {
	net.PacketConn
	s       *Server
	in, out *bucket
	once    sync.Once
}

func newRelayConn(pc net.PacketConn, s *Server) *relayConn {
	return &relayConn{
		PacketConn: pc, s: s,
		in:  newBucket(s.cfg.Rate, s.cfg.now),
		out: newBucket(s.cfg.Rate, s.cfg.now),
	}
}

// ReadFrom returns the next datagram from a peer within the rate; the ones
// beyond it are dropped here. An error ends the allocation (pion's read
// loop), so drops never surface as errors.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if !c.in.allow(n) {
			c.s.dropped.Add(uint64(n))
			continue
		}
		c.s.fromPeers.Add(uint64(n))
		if tap := c.s.cfg.tap; tap != nil {
			tap(false, p[:n])
		}
		return n, addr, nil
	}
}

// WriteTo sends a client's datagram to a peer, or drops it silently (as
// the network would) beyond the rate or towards the TURN port itself.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.s.ownPort(addr) {
		c.s.permDeny.Add(1)
		return len(p), nil
	}
	if !c.out.allow(len(p)) {
		c.s.dropped.Add(uint64(len(p)))
		return len(p), nil
	}
	if tap := c.s.cfg.tap; tap != nil {
		tap(true, p)
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	c.s.toPeers.Add(uint64(n))
	return n, err
}

func (c *relayConn) Close() error {
	err := c.PacketConn.Close()
	c.once.Do(func() { c.s.total.Add(-1) })
	return err
}
