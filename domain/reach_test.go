package domain_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
)

func TestScopeOf(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]domain.AddrScope{
		"127.0.0.1":        domain.ScopeLoopback,
		"::1":              domain.ScopeLoopback,
		"::ffff:127.0.0.1": domain.ScopeLoopback,
		"10.1.2.3":         domain.ScopePrivate,
		"172.16.0.1":       domain.ScopePrivate,
		"192.168.1.5":      domain.ScopePrivate,
		"100.64.0.7":       domain.ScopePrivate,
		"fd00::1":          domain.ScopePrivate,
		"169.254.1.1":      domain.ScopeLinkLocal,
		"fe80::1":          domain.ScopeLinkLocal,
		"203.0.113.9":      domain.ScopePublic,
		"2001:db8::1":      domain.ScopePublic,
		"0.0.0.0":          domain.ScopeInvalid,
		"::":               domain.ScopeInvalid,
		"224.0.0.1":        domain.ScopeInvalid,
		"255.255.255.255":  domain.ScopeInvalid,
	} {
		if got := domain.ScopeOf(netip.MustParseAddr(addr)); got != want {
			t.Errorf("ScopeOf(%s) = %s, want %s", addr, got, want)
		}
	}
	if got := domain.ScopeOf(netip.Addr{}); got != domain.ScopeInvalid {
		t.Errorf("ScopeOf(zero) = %s", got)
	}
}

func TestPathString(t *testing.T) {
	t.Parallel()
	if got := (domain.Path{}).String(); got != "no path" {
		t.Errorf("zero path = %q", got)
	}
	p := domain.Path{Kind: domain.PathRelayed, Transport: domain.TransportQUIC, RTT: 12400 * time.Microsecond}
	if got := p.String(); got != "relayed quic 12ms" {
		t.Errorf("path = %q", got)
	}
}
