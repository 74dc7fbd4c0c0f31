package lan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Default discovery groups and port (docs/lan-discovery.md): an IPv4
// administratively scoped group (RFC 2365, sent with TTL 1) and an IPv6
// link-local scope group (ff12::, transient, hop limit 1).
const (
	DefaultGroup4 = "239.255.67.88"
	DefaultGroup6 = "ff12::6368:6174"
	DefaultPort   = 21077
)

// recvQueue bounds the datagrams read but not yet handled; beyond it the
// socket readers drop (a flood costs the flooder, not our memory).
const recvQueue = 256

// multicastConn is the real Conn: one UDP socket per family bound to the
// discovery port (shared with other clients on the host: SO_REUSEADDR and
// SO_REUSEPORT, so every client on one machine hears every announcement).
type multicastConn struct {
	port    int
	group4  *net.UDPAddr
	group6  *net.UDPAddr
	v4      *ipv4.PacketConn // nil when IPv4 could not be opened
	v6      *ipv6.PacketConn
	closers []net.PacketConn
	log     *slog.Logger

	queue  chan Received
	done   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once

	mu     sync.Mutex
	joined map[string]bool // "4/ifindex", "6/ifindex"
}

// NewConn opens the discovery sockets on port (DefaultPort if 0), joining
// group4 and group6 (the defaults if ""). It fails only when neither family
// can be opened.
func NewConn(port int, group4, group6 string, logger *slog.Logger) (Conn, error) {
	if port == 0 {
		port = DefaultPort
	}
	if group4 == "" {
		group4 = DefaultGroup4
	}
	if group6 == "" {
		group6 = DefaultGroup6
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g4, g6 := net.ParseIP(group4), net.ParseIP(group6)
	if g4 == nil || g4.To4() == nil || !g4.IsMulticast() || g6 == nil || g6.To4() != nil || !g6.IsMulticast() {
		return nil, fmt.Errorf("lan: groups %s and %s are not an IPv4 and an IPv6 multicast address", group4, group6)
	}
	c := &multicastConn{port: port, group4: &net.UDPAddr{IP: g4, Port: port}, group6: &net.UDPAddr{IP: g6, Port: port},
		log: logger, queue: make(chan Received, recvQueue), done: make(chan struct{}), joined: make(map[string]bool)}
	lc := net.ListenConfig{Control: reusePort}
	var errs []error
	if pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port)); err == nil {
		c.v4 = ipv4.NewPacketConn(pc)
		c.closers = append(c.closers, pc)
		_ = c.v4.SetMulticastTTL(1)
		_ = c.v4.SetMulticastLoopback(true)
		if err := c.v4.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
			logger.Debug("lan: no IPv4 control messages", "err", err)
		}
	} else {
		errs = append(errs, fmt.Errorf("udp4 port %d: %w", port, err))
	}
	if pc, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", port)); err == nil {
		c.v6 = ipv6.NewPacketConn(pc)
		c.closers = append(c.closers, pc)
		_ = c.v6.SetMulticastHopLimit(1)
		_ = c.v6.SetMulticastLoopback(true)
		if err := c.v6.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true); err != nil {
			logger.Debug("lan: no IPv6 control messages", "err", err)
		}
	} else {
		errs = append(errs, fmt.Errorf("udp6 port %d: %w", port, err))
	}
	if c.v4 == nil && c.v6 == nil {
		return nil, fmt.Errorf("lan: open discovery sockets: %w", errors.Join(errs...))
	}
	if _, err := c.Interfaces(); err != nil {
		logger.Warn("lan: list interfaces", "err", err)
	}
	if c.v4 != nil {
		c.wg.Add(1)
		go c.readLoop(c.read4)
	}
	if c.v6 != nil {
		c.wg.Add(1)
		go c.readLoop(c.read6)
	}
	return c, nil
}

// Interfaces lists up interfaces that can multicast (IPv4 also on
// loopback, which Linux delivers locally), joining the groups on new ones.
func (c *multicastConn) Interfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("lan: interfaces: %w", err)
	}
	var out []Interface
	for i := range ifs {
		ifi := &ifs[i]
		loop := ifi.Flags&net.FlagLoopback != 0
		if ifi.Flags&net.FlagUp == 0 || (ifi.Flags&net.FlagMulticast == 0 && !loop) {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		it := Interface{Name: ifi.Name, Index: ifi.Index, Loopback: loop}
		has4, has6 := false, false
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			it.Addrs = append(it.Addrs, ip)
			has4, has6 = has4 || ip.Is4(), has6 || ip.Is6()
		}
		c.join(ifi, has4, has6 && ifi.Flags&net.FlagMulticast != 0)
		out = append(out, it)
	}
	return out, nil
}

func (c *multicastConn) join(ifi *net.Interface, v4, v6 bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v4 && c.v4 != nil && !c.joined[fmt.Sprint("4/", ifi.Index)] {
		if err := c.v4.JoinGroup(ifi, c.group4); err != nil {
			c.log.Debug("lan: join IPv4 group", "interface", ifi.Name, "err", err)
		}
		c.joined[fmt.Sprint("4/", ifi.Index)] = true // tried: do not retry every round
	}
	if v6 && c.v6 != nil && !c.joined[fmt.Sprint("6/", ifi.Index)] {
		if err := c.v6.JoinGroup(ifi, c.group6); err != nil {
			c.log.Debug("lan: join IPv6 group", "interface", ifi.Name, "err", err)
		}
		c.joined[fmt.Sprint("6/", ifi.Index)] = true
	}
}

// Send writes b to the groups on via.
func (c *multicastConn) Send(b []byte, via Interface) error {
	ifi, err := net.InterfaceByIndex(via.Index)
	if err != nil {
		return fmt.Errorf("lan: interface %s: %w", via.Name, err)
	}
	has4, has6 := false, false
	for _, a := range via.Addrs {
		has4, has6 = has4 || a.Is4(), has6 || a.Is6()
	}
	var errs []error
	c.mu.Lock() // SetMulticastInterface and WriteTo must pair up
	defer c.mu.Unlock()
	if has4 && c.v4 != nil {
		if err := c.v4.SetMulticastInterface(ifi); err != nil {
			errs = append(errs, err)
		} else if _, err := c.v4.WriteTo(b, nil, c.group4); err != nil {
			errs = append(errs, err)
		}
	}
	if has6 && c.v6 != nil && !via.Loopback {
		if err := c.v6.SetMulticastInterface(ifi); err != nil {
			errs = append(errs, err)
		} else if _, err := c.v6.WriteTo(b, nil, c.group6); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lan: send on %s: %w", via.Name, err)
	}
	return nil
}

// readLoop reads datagrams until the socket closes; read returns the
// length, the arrival interface index (0 if unknown) and the source.
func (c *multicastConn) readLoop(read func([]byte) (int, int, net.Addr, error)) {
	defer c.wg.Done()
	buf := make([]byte, MaxPacketSize+1)
	for {
		n, ifIndex, src, err := read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err == nil {
			c.deliver(buf[:n], src, ifIndex)
		}
	}
}

func (c *multicastConn) read4(b []byte) (int, int, net.Addr, error) {
	n, cm, src, err := c.v4.ReadFrom(b)
	if cm == nil {
		return n, 0, src, err
	}
	return n, cm.IfIndex, src, err
}

func (c *multicastConn) read6(b []byte) (int, int, net.Addr, error) {
	n, cm, src, err := c.v6.ReadFrom(b)
	if cm == nil {
		return n, 0, src, err
	}
	return n, cm.IfIndex, src, err
}

// deliver queues one datagram, dropping it when the queue is full.
func (c *multicastConn) deliver(b []byte, src net.Addr, ifIndex int) {
	ua, ok := src.(*net.UDPAddr)
	if !ok {
		return
	}
	ip, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return
	}
	r := Received{Data: append([]byte(nil), b...), Src: ip.Unmap()}
	if ifIndex > 0 {
		if ifi, err := net.InterfaceByIndex(ifIndex); err == nil {
			r.Via = Interface{Name: ifi.Name, Index: ifi.Index, Loopback: ifi.Flags&net.FlagLoopback != 0}
		}
	}
	select {
	case c.queue <- r:
	default:
	}
}

// Receive returns the next datagram.
func (c *multicastConn) Receive(ctx context.Context) (Received, error) {
	select {
	case r := <-c.queue:
		return r, nil
	case <-c.done:
		return Received{}, net.ErrClosed
	case <-ctx.Done():
		return Received{}, ctx.Err()
	}
}

// Close closes the sockets and waits for the readers.
func (c *multicastConn) Close() error {
	var err error
	c.closed.Do(func() {
		close(c.done)
		var errs []error
		for _, pc := range c.closers {
			errs = append(errs, pc.Close())
		}
		c.wg.Wait()
		err = errors.Join(errs...)
	})
	return err
}
