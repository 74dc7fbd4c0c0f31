package relay

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/wire"
	"github.com/pion/turn/v4"

	"github.com/chatx/chatx/internal/pionlog"
	"github.com/chatx/chatx/internal/turnrest"
)

// ProviderSet provides the embedded TURN server (nil when Config.Disabled).
var ProviderSet = wire.NewSet(New)

// Errors of the relay.
var (
	// ErrIPv4Only: pion relays IPv4 only, so the server listens on IPv4.
	ErrIPv4Only = errors.New("the TURN relay listens and relays on IPv4 only")
	// errCapacity: MaxAllocations reached (answered 508).
	errCapacity = errors.New("relay at capacity")
	// errNoTCPRelay: TCP relaying (RFC 6062) is not offered; clients reach
	// the server over TCP, peers are always UDP.
	errNoTCPRelay = errors.New("TCP allocations are not offered")
)

// pendingTTL is how long a quota slot granted to an Allocate request is
// held for an allocation that has not appeared yet (it appears at once
// unless creating it failed).
const pendingTTL = 10 * time.Second

// Server is a running TURN server.
type Server struct {
	cfg     Config
	secret  []byte
	relayIP net.IP
	bindIP  net.IP
	port    int
	udp     net.PacketConn
	tcp     net.Listener
	turn    *turn.Server
	logger  *slog.Logger

	mu    sync.Mutex
	users map[string]*userAllocations
	owner map[string]int // live allocations by ownerKey(client address, username)

	total     atomic.Int64 // open relayed sockets
	toPeers   atomic.Uint64
	fromPeers atomic.Uint64
	dropped   atomic.Uint64 // bytes dropped by the rate cap
	authFails atomic.Uint64
	quotaHits atomic.Uint64
	capHits   atomic.Uint64
	permDeny  atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

type userAllocations struct {
	active  int
	pending []time.Time
}

// New starts the TURN server cfg describes, with a fresh random secret.
// With cfg.Disabled it returns a nil *Server and starts nothing. The
// cleanup stops it.
func New(cfg Config, logger *slog.Logger) (*Server, func(), error) {
	if cfg.Disabled {
		return nil, func() {}, nil
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if cfg.Ports.Min < 1 || cfg.Ports.Max > 65535 || cfg.Ports.Min > cfg.Ports.Max {
		return nil, nil, fmt.Errorf("relay ports %s: want MIN-MAX within 1-65535", cfg.Ports)
	}
	s := &Server{cfg: cfg, logger: logger, users: map[string]*userAllocations{}, owner: map[string]int{}}
	s.secret = make([]byte, 32)
	if _, err := rand.Read(s.secret); err != nil {
		return nil, nil, fmt.Errorf("relay secret: %w", err)
	}
	if err := s.listen(); err != nil {
		return nil, nil, err
	}
	relayIP, err := pickRelayIP(cfg.RelayIP, s.bindIP)
	if err != nil {
		_ = s.udp.Close()
		_ = s.tcp.Close()
		return nil, nil, err
	}
	s.relayIP = relayIP

	gen := func() turn.RelayAddressGenerator {
		bind := "0.0.0.0"
		if !s.bindIP.IsUnspecified() {
			bind = s.bindIP.String()
		}
		return &relayGenerator{s: s, inner: &turn.RelayAddressGeneratorPortRange{
			RelayAddress: relayIP, Address: bind,
			MinPort: uint16(cfg.Ports.Min), MaxPort: uint16(cfg.Ports.Max),
			MaxRetries: 32,
		}}
	}
	s.turn, err = turn.NewServer(turn.ServerConfig{
		Realm:         cfg.Realm,
		LoggerFactory: pionlog.Factory(logger),
		AuthHandler:   s.authenticate,
		QuotaHandler:  s.quota,
		EventHandler: turn.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onAllocationCreated,
			OnAllocationDeleted: s.onAllocationDeleted,
		},
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: s.udp, RelayAddressGenerator: gen(), PermissionHandler: s.permit}},
		ListenerConfigs:   []turn.ListenerConfig{{Listener: s.tcp, RelayAddressGenerator: gen(), PermissionHandler: s.permit}},
	})
	if err != nil {
		_ = s.udp.Close()
		_ = s.tcp.Close()
		return nil, nil, fmt.Errorf("start TURN server: %w", err)
	}
	logger.Info("relay started", "listen", s.udp.LocalAddr().String(), "relay_ip", relayIP.String(),
		"ports", cfg.Ports.String(), "rate", cfg.Rate.String(), "user_quota", cfg.UserQuota)
	return s, func() { _ = s.Close() }, nil
}

// listen binds UDP and TCP on the same port; with port 0 it retries until
// a port free for both is found.
func (s *Server) listen() error {
	host, portStr, err := net.SplitHostPort(string(s.cfg.Listen))
	if err != nil {
		return fmt.Errorf("relay listen %q: %w", s.cfg.Listen, err)
	}
	ip := net.IPv4zero
	if host != "" {
		if ip = net.ParseIP(host); ip == nil || ip.To4() == nil {
			if ip == nil || !ip.IsUnspecified() {
				return fmt.Errorf("relay listen %q: %w", s.cfg.Listen, ErrIPv4Only)
			}
			ip = net.IPv4zero // "[::]" means every address here too
		}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("relay listen %q: bad port", s.cfg.Listen)
	}
	s.bindIP = ip.To4()
	for try := 0; ; try++ {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: s.bindIP, Port: port})
		if err != nil {
			return fmt.Errorf("relay listen udp %s: %w", s.cfg.Listen, err)
		}
		got := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: s.bindIP, Port: got})
		if err != nil {
			_ = u.Close()
			if port == 0 && try < 16 {
				continue
			}
			return fmt.Errorf("relay listen tcp %s: %w", s.cfg.Listen, err)
		}
		g := newTCPGuard(t, s.cfg.MaxTCPConns, s.logger)
		if s.cfg.tcpIdle > 0 {
			g.idle = s.cfg.tcpIdle
		}
		s.udp, s.tcp, s.port = u, g, got
		return nil
	}
}

// pickRelayIP is the configured relay IP, else the listen IP, else the
// first non-loopback IPv4 address of an interface that is up.
func pickRelayIP(configured string, bindIP net.IP) (net.IP, error) {
	if configured != "" {
		ip := net.ParseIP(configured)
		if ip == nil || ip.To4() == nil || ip.IsUnspecified() {
			return nil, fmt.Errorf("relay IP %q: %w", configured, ErrIPv4Only)
		}
		return ip.To4(), nil
	}
	if !bindIP.IsUnspecified() {
		return bindIP, nil
	}
	ifaces, err := net.Interfaces()
	if err == nil {
		for _, ifc := range ifaces {
			if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
				continue
			}
			addrs, err := ifc.Addrs()
			if err != nil {
				continue
			}
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
					return ipn.IP.To4(), nil
				}
			}
		}
	}
	return net.IPv4(127, 0, 0, 1).To4(), nil
}

// Addr is the UDP address the server listens on (TCP is on the same port).
func (s *Server) Addr() net.Addr {
	if s == nil {
		return nil
	}
	return s.udp.LocalAddr()
}

// RelayIP is the address relayed candidates carry.
func (s *Server) RelayIP() net.IP {
	if s == nil {
		return nil
	}
	return s.relayIP
}

// URLs are the TURN URIs (RFC 7065) clients use, over UDP and over TCP.
// publicHost is the name or address clients reach the relay by; empty
// means the relay IP. A nil Server has none.
func (s *Server) URLs(publicHost string) []string {
	if s == nil {
		return nil
	}
	if publicHost == "" {
		publicHost = s.relayIP.String()
	}
	hp := net.JoinHostPort(publicHost, strconv.Itoa(s.port))
	return []string{"turn:" + hp + "?transport=udp", "turn:" + hp + "?transport=tcp"}
}

// Secret is the TURN REST shared secret credentials must be made with
// (internal/turnrest). It lives only in this process's memory and changes
// at every start, so credentials die with the server. Never log it.
func (s *Server) Secret() []byte {
	if s == nil {
		return nil
	}
	return append([]byte(nil), s.secret...)
}

// CredentialTTL is how long the credentials handed out should live.
func (s *Server) CredentialTTL() time.Duration {
	if s == nil {
		return 0
	}
	return s.cfg.CredentialTTL
}

// Allocations is the number of live allocations (created and not yet
// deleted, as the quota counts them).
func (s *Server) Allocations() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, u := range s.users {
		n += u.active
	}
	return n
}

// Close stops the server and every allocation.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		if err := s.turn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = fmt.Errorf("stop TURN server: %w", err)
		}
		s.logger.Info("relay stopped")
	})
	return s.closeErr
}

// authenticate is the TURN REST check of coturn's use-auth-secret: the
// username is "<unix-expiry>:<name>", not yet expired, and the key is
// derived from the password base64(HMAC-SHA1(secret, username)). pion then
// checks MESSAGE-INTEGRITY with it (an error answer on a wrong password).
//
// It runs for every authenticated request. Unlike coturn, the expiry bounds
// when an allocation can be made, not how long it lives: the client that
// holds a live allocation made with these credentials (same transport
// address, same username) may keep refreshing it and its permissions past
// the expiry, so a long relayed transfer is not cut when the credentials
// age. Anyone else, and any new allocation, needs unexpired credentials.
func (s *Server) authenticate(username, realm string, src net.Addr) ([]byte, bool) {
	exp, _, err := turnrest.Parse(username)
	if err != nil {
		s.authFails.Add(1)
		s.logger.Debug("relay: malformed username", "from", src.String())
		return nil, false
	}
	if !s.cfg.now().Before(exp) && !s.owns(src, username) {
		s.authFails.Add(1)
		s.logger.Debug("relay: expired credentials", "from", src.String(), "expired", exp.UTC().Format(time.RFC3339))
		return nil, false
	}
	return turn.GenerateAuthKey(username, realm, turnrest.Password(s.secret, username)), true
}

func (s *Server) onAuth(src, _ net.Addr, _, _, _ string, method string, verdict bool) {
	if !verdict {
		s.authFails.Add(1)
		s.logger.Debug("relay: authentication failed", "from", src.String(), "method", method)
	}
}

func ownerKey(src net.Addr, username string) string { return src.String() + "\x00" + username }

// owns says whether src holds a live allocation made as username.
func (s *Server) owns(src net.Addr, username string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owner[ownerKey(src, username)] > 0
}

// userName is the quota key: the name part of a TURN REST username, so
// fresh credentials (another expiry) do not buy more allocations.
func userName(username string) string {
	if _, name, err := turnrest.Parse(username); err == nil {
		return name
	}
	return username
}

// quota grants an Allocate request a slot when the user holds fewer than
// UserQuota allocations, counting those being created.
func (s *Server) quota(username, _ string, src net.Addr) bool {
	name := userName(username)
	now := s.cfg.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(name)
	live := u.pending[:0]
	for _, at := range u.pending {
		if now.Sub(at) < pendingTTL {
			live = append(live, at)
		}
	}
	u.pending = live
	if u.active+len(u.pending) >= s.cfg.UserQuota {
		s.quotaHits.Add(1)
		s.logger.Info("relay: allocation quota reached", "user", name, "quota", s.cfg.UserQuota, "from", src.String())
		return false
	}
	u.pending = append(u.pending, now)
	return true
}

// user is name's entry, made on first use; s.mu is held.
func (s *Server) user(name string) *userAllocations {
	u := s.users[name]
	if u == nil {
		u = &userAllocations{}
		s.users[name] = u
	}
	return u
}

func (s *Server) onAllocationCreated(src, _ net.Addr, _, username, _ string, _ net.Addr, _ int) {
	name := userName(username)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owner[ownerKey(src, username)]++
	u := s.user(name)
	u.active++
	if len(u.pending) > 0 {
		u.pending = u.pending[1:]
	}
}

func (s *Server) onAllocationDeleted(src, _ net.Addr, _, username, _ string) {
	name := userName(username)
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := ownerKey(src, username); s.owner[k] > 1 {
		s.owner[k]--
	} else {
		delete(s.owner, k)
	}
	if u := s.users[name]; u != nil {
		u.active--
		if u.active <= 0 && len(u.pending) == 0 {
			delete(s.users, name)
		}
	}
}

// permit decides CreatePermission and ChannelBind: only unicast IPv4 peers
// (the relayed sockets are IPv4), loopback only when the relay itself is on
// loopback (tests), so nobody reaches the relay host's own services through
// it, and nothing in DeniedPeers.
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	ip := peer.To4()
	ok := ip != nil && !ip.IsUnspecified() && !ip.IsMulticast() && !ip.Equal(net.IPv4bcast) &&
		(!ip.IsLoopback() || s.relayIP.IsLoopback())
	if ok {
		addr, _ := netip.AddrFromSlice(ip)
		for _, denied := range s.cfg.DeniedPeers {
			if denied.Contains(addr) {
				ok = false
				break
			}
		}
	}
	if !ok {
		s.permDeny.Add(1)
		s.logger.Debug("relay: permission refused", "from", client.String(), "peer", peer.String())
	}
	return ok
}

// ownPort says whether a datagram to addr would go back into this TURN
// server's own listener (a relay loop).
func (s *Server) ownPort(addr net.Addr) bool {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua.Port != s.port {
		return false
	}
	return ua.IP.Equal(s.relayIP) || ua.IP.Equal(s.bindIP) || (s.bindIP.IsUnspecified() && isLocalIP(ua.IP))
}

func isLocalIP(ip net.IP) bool {
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// relayGenerator makes each allocation's relayed socket, within the total
// cap, wrapped by the rate cap and the counters.
type relayGenerator struct {
	s     *Server
	inner *turn.RelayAddressGeneratorPortRange
}

func (g *relayGenerator) Validate() error { return g.inner.Validate() }

func (g *relayGenerator) AllocatePacketConn(network string, requestedPort int) (net.PacketConn, net.Addr, error) {
	s := g.s
	if n := s.total.Add(1); n > int64(s.cfg.MaxAllocations) {
		s.total.Add(-1)
		s.capHits.Add(1)
		s.logger.Warn("relay at capacity", "allocations", s.cfg.MaxAllocations)
		return nil, nil, errCapacity
	}
	conn, addr, err := g.inner.AllocatePacketConn(network, requestedPort)
	if err != nil {
		s.total.Add(-1)
		return nil, nil, fmt.Errorf("relayed socket: %w", err)
	}
	return newRelayConn(conn, s), addr, nil
}

func (g *relayGenerator) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errNoTCPRelay
}
