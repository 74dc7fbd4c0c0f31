package registry_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/registry"
)

func TestClientKeyBucketsIPv6By64(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		same bool
	}{
		{"[2001:db8:1:2::1]:443", "[2001:db8:1:2:ffff:ffff:ffff:fffe]:80", true},
		{"[2001:db8:1:2::1]:443", "[2001:db8:1:3::1]:443", false},
		{"[fe80::1%eth0]:1", "[fe80::2%eth1]:2", true},
		{"192.0.2.1:1000", "192.0.2.1:2000", true},
		{"192.0.2.1:1000", "192.0.2.2:1000", false},
		{"[::ffff:192.0.2.1]:1", "192.0.2.1:2", true},
		{"127.0.0.1:1", "[::1]:1", false},
	}
	for _, tt := range tests {
		ka, kb := registry.ClientKey(tt.a), registry.ClientKey(tt.b)
		if (ka == kb) != tt.same {
			t.Errorf("ClientKey(%s) = %q, ClientKey(%s) = %q; same = %v, want %v", tt.a, ka, tt.b, kb, ka == kb, tt.same)
		}
	}
}

// One /64 gets one bucket: cycling through its addresses gains nothing.
func TestRateLimitSharedByIPv6Prefix(t *testing.T) {
	t.Parallel()
	l := registry.NewTestLimiter(registry.Rate{PerSecond: 0.001, Burst: 5}, 0)
	now := time.Unix(1e9, 0)
	allowed := 0
	for i := range 100 {
		if l.Allow(registry.ClientKey(fmt.Sprintf("[2001:db8:aa:bb::%x]:5000", i+1)), now) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("%d of 100 requests from one /64 allowed, want the burst of 5", allowed)
	}
	if !l.Allow(registry.ClientKey("[2001:db8:aa:bc::1]:5000"), now) {
		t.Fatal("another /64 was refused")
	}
}

// The table stays bounded: idle (refilled) buckets are forgotten to make
// room, and when every bucket is busy new clients are refused, not added.
func TestRateLimiterTableBounded(t *testing.T) {
	t.Parallel()
	const limit = 50
	l := registry.NewTestLimiter(registry.Rate{PerSecond: 1, Burst: 2}, limit)
	now := time.Unix(1e9, 0)
	for i := range 10 * limit {
		l.Allow(fmt.Sprintf("192.0.2.%d/%d", i%250, i), now)
		if n := l.Len(); n > limit {
			t.Fatalf("table holds %d entries after %d clients, limit %d", n, i+1, limit)
		}
	}
	if l.Allow("newcomer", now) {
		t.Fatal("a new client was admitted while the table is full of busy buckets")
	}
	later := now.Add(10 * time.Second) // every bucket has refilled: idle
	if !l.Allow("newcomer", later) {
		t.Fatal("a new client was refused once the old buckets had gone idle")
	}
	if n := l.Len(); n > limit {
		t.Fatalf("table holds %d entries, limit %d", n, limit)
	}
}
