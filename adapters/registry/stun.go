package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/stun/v3"

	"github.com/chatx/chatx/ports"
)

// Limits of the STUN service (docs/registry-api.md §8).
const (
	// maxSTUNRequest: longer datagrams are dropped unread. A Binding
	// request with USERNAME, MESSAGE-INTEGRITY and FINGERPRINT is ~80 bytes.
	maxSTUNRequest = 548
	// maxSTUNUsername bounds the USERNAME looked up (ours are 22 bytes).
	maxSTUNUsername = 64
	// stunAmplification: an answer is sent only when it is at most twice
	// the request plus 12 bytes (the difference between the IPv4 and the
	// IPv6 form of XOR-MAPPED-ADDRESS), so the server cannot be used to
	// amplify a flood towards a spoofed source.
	stunAmplificationSlack = 12
)

// stunServer answers STUN Binding requests (RFC 8489) on two UDP ports of
// the registry host. A plain request gets XOR-MAPPED-ADDRESS and
// FINGERPRINT. A request with USERNAME and MESSAGE-INTEGRITY (short-term
// credentials) is checked against the session the USERNAME names; its
// answer carries MESSAGE-INTEGRITY with the same key, and the registry
// records the mapped address of that session for that port
// (ports.RegistryService.ObserveBinding). Anything else — not STUN, not a
// Binding request, a bad FINGERPRINT, an unknown USERNAME, a wrong key, a
// source over its rate — is dropped without an answer.
type stunServer struct {
	svc   ports.RegistryService
	conns [ports.STUNServerPorts]*net.UDPConn
	rl    *rateLimiter
	log   *slog.Logger
	count func(result string) // metrics: "plain", "authenticated", "dropped", "rate_limited"; may be nil
	wg    sync.WaitGroup
}

// Results of one datagram, as counted in /metrics.
const (
	stunPlain         = "plain"
	stunAuthenticated = "authenticated"
	stunDropped       = "dropped"
	stunRateLimited   = "rate_limited"
)

// listenSTUN binds the two STUN ports: addr and the next port up. With
// port 0 it picks a free pair.
func listenSTUN(addr string) ([ports.STUNServerPorts]*net.UDPConn, error) {
	var conns [ports.STUNServerPorts]*net.UDPConn
	ap, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return conns, fmt.Errorf("stun listen %s: %w", addr, err)
	}
	tries := 1
	if ap.Port == 0 {
		tries = 20
	}
	for range tries {
		first, err := net.ListenUDP("udp", ap)
		if err != nil {
			return conns, fmt.Errorf("stun listen %s: %w", addr, err)
		}
		second := *ap
		second.Port = first.LocalAddr().(*net.UDPAddr).Port + 1
		c2, err2 := net.ListenUDP("udp", &second)
		if err2 == nil {
			conns[0], conns[1] = first, c2
			return conns, nil
		}
		_ = first.Close()
		err = err2
		if tries == 1 {
			return conns, fmt.Errorf("stun listen %s (second port): %w", second.String(), err)
		}
	}
	return conns, fmt.Errorf("stun listen %s: no free pair of ports", addr)
}

func newSTUNServer(conns [ports.STUNServerPorts]*net.UDPConn, svc ports.RegistryService, rate Rate, log *slog.Logger) *stunServer {
	return &stunServer{svc: svc, conns: conns, rl: newRateLimiter(rate, 0), log: log}
}

// ports are the UDP port numbers served, first and second.
func (s *stunServer) ports() []int {
	out := make([]int, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c.LocalAddr().(*net.UDPAddr).Port)
	}
	return out
}

// run serves both ports until ctx is done or close is called.
func (s *stunServer) run(ctx context.Context) {
	for i, c := range s.conns {
		s.wg.Go(func() { s.serve(ctx, i, c) })
	}
	<-ctx.Done()
	s.close()
	s.wg.Wait()
}

func (s *stunServer) close() {
	for _, c := range s.conns {
		_ = c.Close()
	}
}

func (s *stunServer) serve(ctx context.Context, server int, c *net.UDPConn) {
	buf := make([]byte, maxSTUNRequest+1)
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			s.log.Debug("stun read", "err", err)
			continue
		}
		if n > maxSTUNRequest {
			s.counted(stunDropped)
			continue
		}
		if ok, _ := s.rl.allow(clientKey(src.String()), time.Now()); !ok {
			s.counted(stunRateLimited)
			continue
		}
		resp, result := s.answer(ctx, server, buf[:n], src)
		s.counted(result)
		if resp != nil {
			if _, err := c.WriteToUDPAddrPort(resp, src); err != nil && ctx.Err() == nil {
				s.log.Debug("stun write", "err", err)
			}
		}
	}
}

func (s *stunServer) counted(result string) {
	if s.count != nil {
		s.count(result)
	}
}

// answer is the response to one datagram from src on STUN port server, or
// nil to drop it, and how it was counted. It never panics on hostile bytes
// (FuzzSTUNAnswer).
func (s *stunServer) answer(ctx context.Context, server int, pkt []byte, src netip.AddrPort) ([]byte, string) {
	if len(pkt) > maxSTUNRequest || !stun.IsMessage(pkt) {
		return nil, stunDropped
	}
	m := new(stun.Message)
	if err := stun.Decode(pkt, m); err != nil || m.Type != stun.BindingRequest {
		return nil, stunDropped
	}
	if m.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(m) != nil {
		return nil, stunDropped
	}
	var username string
	var key []byte
	switch hasUser, hasMI := m.Contains(stun.AttrUsername), m.Contains(stun.AttrMessageIntegrity); {
	case hasUser && hasMI:
		var u stun.Username
		if u.GetFrom(m) != nil || len(u) == 0 || len(u) > maxSTUNUsername {
			return nil, stunDropped
		}
		k, err := s.svc.STUNKey(ctx, string(u))
		if err != nil {
			return nil, stunDropped
		}
		if stun.NewShortTermIntegrity(string(k)).Check(m) != nil {
			return nil, stunDropped
		}
		username, key = string(u), k
	case hasUser || hasMI:
		return nil, stunDropped // half an authentication: neither plain nor checkable
	}
	ip := src.Addr().Unmap()
	setters := []stun.Setter{
		stun.NewTransactionIDSetter(m.TransactionID),
		stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ip.AsSlice(), Port: int(src.Port())},
	}
	if key != nil {
		setters = append(setters, stun.NewShortTermIntegrity(string(key)))
	}
	setters = append(setters, stun.Fingerprint)
	resp, err := stun.Build(setters...)
	if err != nil || len(resp.Raw) > 2*len(pkt)+stunAmplificationSlack {
		return nil, stunDropped
	}
	if key == nil {
		return resp.Raw, stunPlain
	}
	if err := s.svc.ObserveBinding(ctx, username, server, netip.AddrPortFrom(ip, src.Port())); err != nil {
		return nil, stunDropped
	}
	return resp.Raw, stunAuthenticated
}

// stunListenAddr is where the first STUN port binds by default: the host
// of the HTTPS listen address and the port it got.
func stunListenAddr(cfg ServerConfig, tcp net.Addr) string {
	if cfg.STUNListen != "" {
		return cfg.STUNListen
	}
	host, port, err := net.SplitHostPort(string(cfg.Listen))
	if err != nil {
		host = ""
	}
	if port == "0" {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.(*net.TCPAddr).Port))
}
