package tcp

import "time"

// ListenAddr is the TCP address the link listens on ("host:port"); the
// default ":0" lets the OS choose the port on every interface.
type ListenAddr string

// Config tunes a Link. Zero fields take the defaults of DefaultConfig.
type Config struct {
	ListenAddr ListenAddr
	// DialTimeout bounds one endpoint: TCP connect, TLS handshake and hello.
	DialTimeout time.Duration
	// HeartbeatInterval is how often each side sends a ping.
	HeartbeatInterval time.Duration
	// IdleTimeout is the read deadline: a link that delivers no frame for
	// this long is closed.
	IdleTimeout time.Duration
	// WriteTimeout bounds a flush to the socket and how long Send waits for
	// room in a full queue.
	WriteTimeout time.Duration
	// QueueSize is the number of frames a link's writer may hold.
	QueueSize int
	// MaxLinks caps the number of peers with a link at once; further
	// incoming links are refused.
	MaxLinks int
	// MaxPendingHandshakes caps incoming connections not yet authenticated.
	MaxPendingHandshakes int
	// DialStagger is the delay between the starts of two TCP endpoints'
	// dials (Happy Eyeballs, RFC 8305 §5); StreamDelay the delay before the
	// QUIC stream joins the race when there are TCP endpoints to try.
	DialStagger, StreamDelay time.Duration
	// UpgradeInterval is how often a link over a QUIC stream tries to move
	// to TCP.
	UpgradeInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait, after no endpoint of a peer
	// answered, before Send dials that peer again (until its endpoints change).
	MinBackoff, MaxBackoff time.Duration
}

// DefaultConfig: a silent link is detected within 30 s (ping every 10 s,
// read deadline 30 s), a peer that stops reading within 10 s.
func DefaultConfig() Config {
	return Config{
		ListenAddr:           ":0",
		DialTimeout:          5 * time.Second,
		HeartbeatInterval:    10 * time.Second,
		IdleTimeout:          30 * time.Second,
		WriteTimeout:         10 * time.Second,
		QueueSize:            4096,
		MaxLinks:             1024,
		MaxPendingHandshakes: 64,
		DialStagger:          250 * time.Millisecond,
		StreamDelay:          300 * time.Millisecond,
		UpgradeInterval:      30 * time.Second,
		MinBackoff:           250 * time.Millisecond,
		MaxBackoff:           30 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ListenAddr == "" {
		c.ListenAddr = d.ListenAddr
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.QueueSize <= 0 {
		c.QueueSize = d.QueueSize
	}
	if c.MaxLinks <= 0 {
		c.MaxLinks = d.MaxLinks
	}
	if c.MaxPendingHandshakes <= 0 {
		c.MaxPendingHandshakes = d.MaxPendingHandshakes
	}
	if c.DialStagger <= 0 {
		c.DialStagger = d.DialStagger
	}
	if c.StreamDelay <= 0 {
		c.StreamDelay = d.StreamDelay
	}
	if c.UpgradeInterval <= 0 {
		c.UpgradeInterval = d.UpgradeInterval
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = d.MinBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(d.MaxBackoff, c.MinBackoff)
	}
	return c
}
