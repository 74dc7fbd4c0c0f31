package lan_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/lan"
	"github.com/chatx/chatx/domain"
)

// fuzzNow is the clock of the fuzz target, so the committed corpus keeps
// its meaning whenever it runs.
var fuzzNow = time.UnixMilli(1_800_000_000_000)

func FuzzDecode(f *testing.F) {
	me := newIdentity(f, "alice")
	good, err := lan.Encode(me, samplePacket(fuzzNow))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:40])
	f.Add([]byte("CHXL\x01\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := lan.Decode(b, fuzzNow)
		if err != nil {
			return
		}
		if len(b) > lan.MaxPacketSize || len(p.Candidates) > lan.MaxCandidates {
			t.Fatalf("accepted %d bytes with %d candidates", len(b), len(p.Candidates))
		}
		if p.Identity.IsZero() || len(p.Identity.Name().String()) > domain.MaxUsernameLen*4 {
			t.Fatalf("accepted identity %q", p.Identity.Name())
		}
		for _, c := range p.Candidates {
			if c.Addr.Port() == 0 || !c.Addr.Addr().IsValid() || c.Addr.Addr().Zone() != "" || c.Addr.Addr() == (netip.Addr{}) {
				t.Fatalf("accepted candidate %v", c.Addr)
			}
		}
	})
}
