package lan_test

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/lan"
	"github.com/chatx/chatx/domain"
)

func samplePacket(now time.Time) lan.Packet {
	return lan.Packet{Type: lan.TypeAnnounce, Instance: 0x0102030405060708, Sequence: 42, Time: now,
		Candidates: []lan.Candidate{
			{Kind: lan.KindLink, Addr: netip.MustParseAddrPort("192.168.1.5:41000")},
			{Kind: lan.KindFile, Addr: netip.MustParseAddrPort("[fd00::5]:41001")},
			{Kind: lan.KindFile, Addr: netip.MustParseAddrPort("[fe80::1%eth0]:41001")},
		}}
}

func TestPacketRoundTrip(t *testing.T) {
	t.Parallel()
	me := newIdentity(t, "alice")
	now := time.UnixMilli(time.Now().UnixMilli())
	b, err := lan.Encode(me, samplePacket(now))
	if err != nil {
		t.Fatal(err)
	}
	p, err := lan.Decode(b, now)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Identity.SameKey(me.PublicKey()) || !p.Identity.Name().Equal(me.Name()) {
		t.Fatalf("identity %v, want %v", p.Identity.Name(), me.Name())
	}
	if p.Type != lan.TypeAnnounce || p.Instance != 0x0102030405060708 || p.Sequence != 42 || !p.Time.Equal(now) {
		t.Fatalf("header %+v", p)
	}
	want := []lan.Candidate{
		{Kind: lan.KindLink, Addr: netip.MustParseAddrPort("192.168.1.5:41000")},
		{Kind: lan.KindFile, Addr: netip.MustParseAddrPort("[fd00::5]:41001")},
		{Kind: lan.KindFile, Addr: netip.MustParseAddrPort("[fe80::1]:41001")}, // zone stripped
	}
	if !slices.Equal(p.Candidates, want) {
		t.Fatalf("candidates %v, want %v", p.Candidates, want)
	}
	// Byte-exact layout of docs/lan-discovery.md.
	if !bytes.HasPrefix(b, []byte{'C', 'H', 'X', 'L', 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 42}) {
		t.Fatalf("header bytes % x", b[:22])
	}
	if wantLen := 30 + 1 + 5 + 32 + 1 + (1 + 1 + 4 + 2) + 2*(1+1+16+2) + 64; len(b) != wantLen {
		t.Fatalf("%d bytes, want %d", len(b), wantLen)
	}
}

func TestGoodbyeRoundTrip(t *testing.T) {
	t.Parallel()
	me := newIdentity(t, "alice")
	now := time.Now()
	in := samplePacket(now)
	in.Type = lan.TypeGoodbye
	b, err := lan.Encode(me, in)
	if err != nil {
		t.Fatal(err)
	}
	p, err := lan.Decode(b, now)
	if err != nil || p.Type != lan.TypeGoodbye || len(p.Candidates) != 0 {
		t.Fatalf("goodbye %+v, %v", p, err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	me, mallory := newIdentity(t, "alice"), newIdentity(t, "mallory")
	now := time.Now()
	good, err := lan.Encode(me, samplePacket(now))
	if err != nil {
		t.Fatal(err)
	}
	nameAt := 31
	keyAt := nameAt + len("alice")
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		b    []byte
		now  time.Time
		want error
	}{
		{"forged candidate", mutate(func(b []byte) []byte { b[len(b)-64-3]++; return b }), now, lan.ErrBadSigning},
		{"key swapped for another", mutate(func(b []byte) []byte {
			copy(b[keyAt:], mallory.PublicKey())
			return b
		}), now, lan.ErrBadSigning},
		{"signature flipped", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), now, lan.ErrBadSigning},
		{"wrong version", mutate(func(b []byte) []byte { b[4] = 2; return b }), now, lan.ErrVersion},
		{"wrong magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), now, lan.ErrMalformed},
		{"unknown type", mutate(func(b []byte) []byte { b[5] = 9; return b }), now, lan.ErrMalformed},
		{"oversize", append(bytes.Clone(good), make([]byte, lan.MaxPacketSize)...), now, lan.ErrTooLarge},
		{"trailing byte", append(bytes.Clone(good), 0), now, lan.ErrMalformed},
		{"truncated", good[:len(good)-1], now, lan.ErrMalformed},
		{"empty", nil, now, lan.ErrMalformed},
		{"stale", good, now.Add(lan.MaxClockSkew + time.Second), lan.ErrStale},
		{"from the future", good, now.Add(-lan.MaxClockSkew - time.Second), lan.ErrStale},
		{"name not normalised", mutate(func(b []byte) []byte { b[nameAt] = 'A'; return b }), now, lan.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := lan.Decode(c.b, c.now); !errors.Is(err, c.want) {
				t.Fatalf("Decode: %v, want %v", err, c.want)
			}
		})
	}
}

func TestEncodeBoundsCandidates(t *testing.T) {
	t.Parallel()
	me := newIdentity(t, "alice-with-a-rather-long-name-32")
	p := lan.Packet{Type: lan.TypeAnnounce, Time: time.Now()}
	for i := range 40 {
		p.Candidates = append(p.Candidates, lan.Candidate{Kind: lan.KindFile,
			Addr: netip.AddrPortFrom(netip.MustParseAddr("fd00::1").Next(), uint16(1000+i))})
	}
	b, err := lan.Encode(me, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > lan.MaxPacketSize {
		t.Fatalf("%d bytes", len(b))
	}
	got, err := lan.Decode(b, time.Now())
	if err != nil || len(got.Candidates) != lan.MaxCandidates {
		t.Fatalf("%d candidates, %v", len(got.Candidates), err)
	}
	_ = domain.MaxUsernameLen
}
