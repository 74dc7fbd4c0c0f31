package registry

import "time"

// ListenAddr is the TCP address the registry server listens on (":5000").
type ListenAddr string

// DataDir is the registry server's data directory: accounts and its TLS
// certificate live there.
type DataDir string

// TLSCertFile and TLSKeyFile name a PEM certificate and key to serve
// instead of the generated self-signed one.
type (
	TLSCertFile string
	TLSKeyFile  string
)

// RegistryURL is where a client finds the registry, optionally with the
// server certificate's SHA-256 fingerprint: https://host:5000/#sha256=<hex>.
type RegistryURL string

// ProfileDir is the client's profile directory; the trust-on-first-use pin
// of the registry certificate is kept there (registry_known_hosts).
type ProfileDir string

// DefaultListenAddr is the original registry's port.
const DefaultListenAddr ListenAddr = ":5000"

// Rate is a token bucket: PerSecond tokens added each second, at most Burst.
type Rate struct {
	PerSecond float64
	Burst     int
}

// ServerConfig configures the registry server. Zero values take defaults.
type ServerConfig struct {
	Listen  ListenAddr
	Data    DataDir
	TLSCert TLSCertFile
	TLSKey  TLSKeyFile

	// MaxConns caps open TCP connections (default 20,000); Accept waits
	// for a free slot beyond it.
	MaxConns int
	// ReadHeaderTimeout (5 s), ReadTimeout (30 s) and IdleTimeout (120 s)
	// bound slow and idle clients.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	// StreamPing is how often an idle presence stream gets a keep-alive
	// comment (15 s); StreamWriteTimeout bounds each stream write (10 s).
	StreamPing         time.Duration
	StreamWriteTimeout time.Duration
	// ChallengeRate and RegisterRate limit each client IP (defaults 5/s
	// burst 20, and 2/s burst 10).
	ChallengeRate Rate
	RegisterRate  Rate
	// MaxStreamsPerClient caps open presence streams per client key (an
	// IPv4 address or an IPv6 /64; default 64), so idle streams from one
	// place cannot use up MaxConns. Loopback clients have their own cap,
	// MaxStreamsLoopback (default MaxConns: tests and benchmarks run
	// thousands of watchers from 127.0.0.1; a reverse proxy on the same
	// machine would put every client there too).
	MaxStreamsPerClient int
	MaxStreamsLoopback  int

	// HideUsers stops listing everyone (`chatx registry --list-users=false`):
	// GET /v1/online answers 403 listing_disabled and presence streams
	// carry no one's presence (signals still flow); GET /v1/users/{name}
	// by exact name still works, so clients find the people they know.
	HideUsers bool

	// NoSTUN turns the STUN server off (it is on by default).
	NoSTUN bool
	// STUNListen is the UDP address of the first STUN port; the second is
	// the next port up. Default: the HTTPS listen host and port (":5000"
	// → ":5000/udp" and ":5001/udp"); with an HTTPS port of 0, a free pair.
	STUNListen string
	// STUNRate limits Binding requests per source client key (default
	// 10/s, burst 20); requests over it are dropped.
	STUNRate Rate
	// SignalRate limits signals per sending session (default 20/s, burst 40).
	SignalRate Rate
	// SignalQueue is how many signals may wait for one recipient stream
	// (default 64); beyond it the sender gets 503 busy.
	SignalQueue int
	// TURN lists the relays the registry hands credentials for
	// (GET /v1/relays). Empty: no relay.
	TURN []TURNServer
}

// TURNServer is a TURN relay that accepts TURN REST credentials (coturn's
// use-auth-secret): username "<unix expiry>:<name>", password
// base64(HMAC-SHA1(Secret, username)).
type TURNServer struct {
	// URLs are TURN URIs (RFC 7065), e.g. "turn:relay.example:3478?transport=udp".
	URLs []string
	// Secret is the shared secret (coturn's static-auth-secret).
	Secret []byte
	// TTL is how long handed-out credentials live (default 10 min).
	TTL time.Duration
}

// DefaultTURNTTL is TURNServer.TTL's default.
const DefaultTURNTTL = 10 * time.Minute

func (c ServerConfig) withDefaults() ServerConfig {
	if c.Listen == "" {
		c.Listen = DefaultListenAddr
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 20_000
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 5 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.StreamPing <= 0 {
		c.StreamPing = 15 * time.Second
	}
	if c.StreamWriteTimeout <= 0 {
		c.StreamWriteTimeout = 10 * time.Second
	}
	if c.ChallengeRate.PerSecond <= 0 {
		c.ChallengeRate = Rate{PerSecond: 5, Burst: 20}
	}
	if c.RegisterRate.PerSecond <= 0 {
		c.RegisterRate = Rate{PerSecond: 2, Burst: 10}
	}
	if c.MaxStreamsPerClient <= 0 {
		c.MaxStreamsPerClient = 64
	}
	if c.MaxStreamsLoopback <= 0 {
		c.MaxStreamsLoopback = c.MaxConns
	}
	if c.STUNRate.PerSecond <= 0 {
		c.STUNRate = Rate{PerSecond: 10, Burst: 20}
	}
	if c.SignalRate.PerSecond <= 0 {
		c.SignalRate = Rate{PerSecond: 20, Burst: 40}
	}
	if c.SignalQueue <= 0 {
		c.SignalQueue = 64
	}
	turn := make([]TURNServer, 0, len(c.TURN))
	for _, t := range c.TURN {
		if t.TTL <= 0 {
			t.TTL = DefaultTURNTTL
		}
		turn = append(turn, t)
	}
	c.TURN = turn
	return c
}

// DefaultMaxPeers is ClientConfig.MaxPeers's default.
const DefaultMaxPeers = 100_000

// ClientConfig configures the directory client. Zero values take defaults.
type ClientConfig struct {
	URL     RegistryURL
	Profile ProfileDir
	// MinBackoff and MaxBackoff bound reconnect and retry delays
	// (250 ms and 30 s); each delay gets up to 50 % random jitter.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// RequestTimeout bounds each plain request (10 s).
	RequestTimeout time.Duration
	// StreamIdleTimeout: a stream silent this long is deemed dead (45 s,
	// three server pings).
	StreamIdleTimeout time.Duration
	// MaxPeers bounds the online peers kept from the presence stream
	// (100,000), so a hostile registry cannot grow our memory without
	// limit: beyond it, presence of further names is dropped and logged.
	MaxPeers int
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.MinBackoff <= 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.StreamIdleTimeout <= 0 {
		c.StreamIdleTimeout = 45 * time.Second
	}
	if c.MaxPeers <= 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	return c
}
