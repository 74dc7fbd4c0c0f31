package udp

import "time"

// ListenAddr is the UDP address the transport listens on ("host:port");
// ":0" lets the system pick a port on every address.
type ListenAddr string

// Config tunes the transport. The zero value is usable: every zero field
// takes the default documented beside it.
type Config struct {
	// ListenAddr is where the QUIC listener binds (default ":0").
	ListenAddr ListenAddr
	// MaxIncomingStreams is how many file streams one peer may have open
	// towards us at once (default 16); QUIC flow control enforces it.
	MaxIncomingStreams int
	// MaxIncomingTransfers bounds incoming streams over all peers (default
	// 64); a stream beyond it is answered "busy".
	MaxIncomingTransfers int
	// MaxConnections bounds incoming connections (default 128).
	MaxConnections int
	// MaxConnectionsPerPeer bounds incoming connections from one identity
	// key (default 4), so one peer cannot take every connection slot; an
	// extra one is closed with application error 0x3.
	MaxConnectionsPerPeer int
	// MaxStreamReceiveWindow and MaxConnectionReceiveWindow cap QUIC's
	// auto-tuned flow-control windows, which bound memory per stream and
	// per connection (defaults 16 MiB and 48 MiB).
	MaxStreamReceiveWindow     uint64
	MaxConnectionReceiveWindow uint64
	// BufferSize is the size of the one buffer each stream copies through
	// (default 256 KiB).
	BufferSize int
	// HandshakeTimeout bounds dialing one endpoint (default 10 s).
	HandshakeTimeout time.Duration
	// ConnectTimeout bounds reaching a peer that has no connection yet:
	// the direct race, hole punching and the relay together (default 15 s).
	ConnectTimeout time.Duration
	// DialStagger is the delay between the starts of two direct dials of
	// the race (Happy Eyeballs, RFC 8305; default 200 ms).
	DialStagger time.Duration
	// PunchAfter is how long the direct race runs alone before hole
	// punching starts beside it (default 300 ms; at once when the peer
	// has no candidate worth dialling).
	PunchAfter time.Duration
	// RelayAfter is how long punching runs before the relay is tried
	// beside it (default 1.2 s; at once when both NATs map per endpoint).
	RelayAfter time.Duration
	// MaxLinksPerPeer bounds the message-link streams one peer may have
	// open towards us (default 4); MaxPendingLinks bounds those not yet
	// taken by AcceptStream (default 32).
	MaxLinksPerPeer int
	MaxPendingLinks int
	// IdleTimeout closes a connection that hears nothing for that long
	// (default 15 s; keep-alives are sent at a third of it).
	IdleTimeout time.Duration
	// StallTimeout bounds every wait for the peer within a stream: the
	// header, the answer, the start decision and each read of data
	// (default 60 s).
	StallTimeout time.Duration
	// FinishTimeout bounds how long a sender waits, after its last byte,
	// for the receiver's final status (default 5 min: the receiver flushes
	// and checks the file first).
	FinishTimeout time.Duration
	// NoTCPFiles turns the TCP file listener off (tcpfile.go): by default
	// the transport also listens on TCP at its UDP port's number for file
	// streams over TLS 1.3.
	NoTCPFiles bool
	// Stripes is the most connections one file is striped over, QUIC or
	// TCP (stream version 3, docs/file-protocol.md section 11): 0 takes
	// min(4, GOMAXPROCS), 1 turns striping off, at most 4 (more is cut to
	// 4). A receiver grants at most its own Stripes.
	Stripes int
	// StripeMinSize is the least size of a file we stripe when sending
	// (default 64 MiB).
	StripeMinSize int64
}

const (
	defaultListenAddr                 = ":0"
	defaultMaxIncomingStreams         = 16
	defaultMaxIncomingTransfers       = 64
	defaultMaxConnections             = 128
	defaultMaxConnectionsPerPeer      = 4
	defaultMaxStreamReceiveWindow     = 16 << 20
	defaultMaxConnectionReceiveWindow = 48 << 20
	defaultBufferSize                 = 256 << 10
	// pipelineBuffers is how many BufferSize buffers each file stream's
	// two stages (read and hash | write to the stream at the sender; read
	// from the stream | hash and write to disk at the receiver) pass
	// between them.
	pipelineBuffers         = 4
	defaultHandshakeTimeout = 10 * time.Second
	defaultConnectTimeout   = 15 * time.Second
	defaultDialStagger      = 200 * time.Millisecond
	defaultPunchAfter       = 300 * time.Millisecond
	defaultRelayAfter       = 1200 * time.Millisecond
	defaultMaxLinksPerPeer  = 4
	defaultMaxPendingLinks  = 32
	defaultIdleTimeout      = 15 * time.Second
	defaultStallTimeout     = 60 * time.Second
	defaultFinishTimeout    = 5 * time.Minute
	maxBufferSize           = 8 << 20
)

func (c Config) withDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = defaultListenAddr
	}
	if c.MaxIncomingStreams <= 0 {
		c.MaxIncomingStreams = defaultMaxIncomingStreams
	}
	if c.MaxIncomingTransfers <= 0 {
		c.MaxIncomingTransfers = defaultMaxIncomingTransfers
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = defaultMaxConnections
	}
	if c.MaxConnectionsPerPeer <= 0 {
		c.MaxConnectionsPerPeer = defaultMaxConnectionsPerPeer
	}
	if c.MaxStreamReceiveWindow == 0 {
		c.MaxStreamReceiveWindow = defaultMaxStreamReceiveWindow
	}
	if c.MaxConnectionReceiveWindow == 0 {
		c.MaxConnectionReceiveWindow = defaultMaxConnectionReceiveWindow
	}
	if c.BufferSize <= 0 {
		c.BufferSize = defaultBufferSize
	}
	if c.BufferSize > maxBufferSize {
		c.BufferSize = maxBufferSize
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = defaultHandshakeTimeout
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = defaultConnectTimeout
	}
	if c.DialStagger <= 0 {
		c.DialStagger = defaultDialStagger
	}
	if c.PunchAfter <= 0 {
		c.PunchAfter = defaultPunchAfter
	}
	if c.RelayAfter <= 0 {
		c.RelayAfter = defaultRelayAfter
	}
	if c.MaxLinksPerPeer <= 0 {
		c.MaxLinksPerPeer = defaultMaxLinksPerPeer
	}
	if c.MaxPendingLinks <= 0 {
		c.MaxPendingLinks = defaultMaxPendingLinks
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = defaultStallTimeout
	}
	if c.Stripes <= 0 {
		c.Stripes = autoStripes()
	}
	c.Stripes = min(c.Stripes, maxUsedStripes)
	if c.StripeMinSize <= 0 {
		c.StripeMinSize = defaultStripeMinSize
	}
	if c.FinishTimeout <= 0 {
		c.FinishTimeout = defaultFinishTimeout
	}
	return c
}
