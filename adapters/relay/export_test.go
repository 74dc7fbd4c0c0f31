package relay

import (
	"net"
	"time"
)

// WithTap makes cfg's server call tap with every datagram it relays
// (toPeer: from the client towards a peer), so a test sees exactly what the
// relay sees.
func WithTap(cfg Config, tap func(toPeer bool, b []byte)) Config {
	cfg.tap = tap
	return cfg
}

// WithClock makes cfg's server read time (credential expiry, token
// buckets) from now.
func WithClock(cfg Config, now func() time.Time) Config {
	cfg.now = now
	return cfg
}

// Bucket is the token bucket, for deterministic tests.
type Bucket = bucket

// NewBucket returns a full bucket for rate on the clock now.
func NewBucket(rate Rate, now func() time.Time) *Bucket { return newBucket(rate, now) }

// Allow spends n bytes of tokens or refuses.
func (b *Bucket) Allow(n int) bool { return b.allow(n) }

// OwnPort says whether the server refuses to relay into addr.
func (s *Server) OwnPort(addr net.Addr) bool { return s.ownPort(addr) }

// PeerBytesSeen counts the bytes from peers the relayed sockets have read,
// passed or dropped by the rate cap.
func (s *Server) PeerBytesSeen() uint64 { return s.fromPeers.Load() + s.dropped.Load() }

// WithTCPIdle shortens the idle timeout of TURN-over-TCP connections.
func WithTCPIdle(cfg Config, d time.Duration) Config {
	cfg.tcpIdle = d
	return cfg
}
