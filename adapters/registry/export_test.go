package registry

import "time"

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

// ClientURL exposes clientURL.
var ClientURL = clientURL
