package localnet_test

import (
	"net/netip"
	"testing"

	"github.com/chatx/chatx/internal/localnet"
)

func TestPrefixesHoldLoopback(t *testing.T) {
	t.Parallel()
	nets := localnet.Prefixes()
	if !localnet.Contains(nets, netip.MustParseAddr("127.0.0.1")) {
		t.Fatalf("127.0.0.1 not in %v", nets)
	}
	var c localnet.Cache
	if got := c.Get(); len(got) != len(nets) {
		t.Errorf("cache %v, direct %v", got, nets)
	}
}

func TestContainsIgnoresZoneAndMapping(t *testing.T) {
	t.Parallel()
	nets := []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("fe80::/64")}
	for addr, want := range map[string]bool{
		"192.168.1.7": true, "::ffff:192.168.1.7": true, "fe80::1%eth0": true, "10.0.0.1": false,
	} {
		if got := localnet.Contains(nets, netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
}
