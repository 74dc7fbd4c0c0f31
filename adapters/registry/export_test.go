package registry

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/chatx/chatx/ports"
)

// Hooks for package registry_test.

// ClientKey exposes clientKey.
func ClientKey(remoteAddr string) string { return clientKey(remoteAddr) }

// TestLimiter wraps a rateLimiter with a table of at most limit entries.
type TestLimiter struct{ rl *rateLimiter }

func NewTestLimiter(r Rate, limit int) TestLimiter { return TestLimiter{newRateLimiter(r, limit)} }

func (l TestLimiter) Allow(key string, now time.Time) bool {
	ok, _ := l.rl.allow(key, now)
	return ok
}

func (l TestLimiter) Len() int {
	l.rl.mu.Lock()
	defer l.rl.mu.Unlock()
	return len(l.rl.byIP)
}

// STUNAnswer runs the STUN server's handling of one datagram from src on
// its first port: the answer, or nil when it is dropped.
func STUNAnswer(svc ports.RegistryService, pkt []byte, src netip.AddrPort) []byte {
	s := &stunServer{svc: svc, log: slog.New(slog.DiscardHandler)}
	resp, _ := s.answer(context.Background(), 0, pkt, src)
	return resp
}

// ClientURL exposes clientURL.
var ClientURL = clientURL
