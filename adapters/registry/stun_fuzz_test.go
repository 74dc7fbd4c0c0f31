package registry_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// FuzzSTUNAnswer feeds arbitrary datagrams to the STUN server's handler.
// Invariants: no panic; an answer is a Binding success for the same
// transaction, never more than twice the request plus 12 bytes (no
// amplification), with a valid FINGERPRINT; it carries MESSAGE-INTEGRITY
// only when the request was authenticated with the session's key.
func FuzzSTUNAnswer(f *testing.F) {
	// Deterministic randomness, so the session's STUN credentials (and so
	// the seeds below) are the same on every run.
	seed := [32]byte{1}
	svc, err := app.NewRegistry(memory.NewAccountStore(), memory.NewPresenceStore(), memory.NewRealClock(),
		app.RegistryOptions{Random: rand.NewChaCha8(seed)})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	id := newLocal(f, "alice")
	ch, err := svc.Challenge(ctx)
	if err != nil {
		f.Fatal(err)
	}
	p := domain.RegistryProof{Action: domain.ActionRegister, Name: id.Name(), Key: id.PublicKey(), Challenge: ch}
	sess, err := svc.Register(ctx, ports.RegisterRequest{Proof: p, Signature: p.Sign(id), ObservedHost: "127.0.0.1"})
	if err != nil {
		f.Fatal(err)
	}
	key := sess.STUN.Key
	build := func(s ...stun.Setter) []byte {
		m, err := stun.Build(append([]stun.Setter{stun.TransactionID, stun.BindingRequest}, s...)...)
		if err != nil {
			f.Fatal(err)
		}
		return m.Raw
	}
	f.Add(build())
	f.Add(build(stun.Fingerprint))
	f.Add(build(stun.NewUsername(sess.STUN.Username), stun.NewShortTermIntegrity(string(key)), stun.Fingerprint))
	f.Add(build(stun.NewUsername(sess.STUN.Username), stun.NewShortTermIntegrity("wrong"), stun.Fingerprint))
	f.Add(build(stun.NewUsername(sess.STUN.Username)))
	f.Add([]byte("\x16\x03\x01 not stun"))
	src := netip.MustParseAddrPort("[2001:db8::7]:40000")

	f.Fuzz(func(t *testing.T, pkt []byte) {
		ans := registry.STUNAnswer(svc, pkt, src)
		if ans == nil {
			return
		}
		if len(ans) > 2*len(pkt)+12 {
			t.Fatalf("answer of %d bytes to a request of %d", len(ans), len(pkt))
		}
		req, m := new(stun.Message), new(stun.Message)
		if err := stun.Decode(pkt, req); err != nil {
			t.Fatalf("answered a request that does not decode: %v", err)
		}
		if err := stun.Decode(ans, m); err != nil || m.Type != stun.BindingSuccess || m.TransactionID != req.TransactionID {
			t.Fatalf("answer %v (%v)", m, err)
		}
		if err := stun.Fingerprint.Check(m); err != nil {
			t.Fatalf("answer FINGERPRINT: %v", err)
		}
		if m.Contains(stun.AttrMessageIntegrity) {
			if err := stun.NewShortTermIntegrity(string(key)).Check(req); err != nil {
				t.Fatal("answered with MESSAGE-INTEGRITY a request not authenticated with the key")
			}
		}
	})
}
