package relay

import (
	"sync"
	"time"
)

// bucket is a token bucket in bytes: rate bytes per second, at most burst
// saved up. allow spends n tokens or refuses without spending; a refused
// datagram is dropped (policing), which is what UDP and QUIC's congestion
// control expect of a bottleneck.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second; <= 0: unlimited
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

// minBurst lets a full QUIC flight of a few packets through at any rate.
const minBurst = 64 << 10

// newBucket returns a full bucket for rate bits per second with a burst of
// a quarter second (at least 64 KiB). A negative rate never refuses.
func newBucket(rate Rate, now func() time.Time) *bucket {
	b := &bucket{now: now}
	if rate < 0 {
		return b
	}
	b.rate = float64(rate) / 8
	b.burst = max(b.rate/4, minBurst)
	b.tokens = b.burst
	b.last = now()
	return b
}

func (b *bucket) allow(n int) bool {
	if b.rate <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+elapsed.Seconds()*b.rate)
		b.last = now
	}
	if float64(n) > b.tokens {
		return false
	}
	b.tokens -= float64(n)
	return true
}
