package udp_test

import (
	"bytes"
	"crypto/ed25519"
	"net/netip"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
)

func FuzzDecodeRequest(f *testing.F) {
	ok := make([]byte, 29)
	ok[0] = 1
	ok[28] = 5
	f.Add(ok)
	f.Add([]byte{2})
	f.Add(bytes.Repeat([]byte{0xff}, 29))
	f.Fuzz(func(t *testing.T, b []byte) {
		index, size, again, err := udp.DecodeRequest(b)
		if err != nil {
			return
		}
		if index < 0 || index >= domain.MaxTransferFiles || size < 0 || size > domain.MaxFileSize {
			t.Fatalf("accepted index %d size %d", index, size)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}

func FuzzDecodeAnswer(f *testing.F) {
	f.Add(append([]byte{0}, make([]byte, 40)...))
	f.Add([]byte{1})
	f.Add(append([]byte{0}, bytes.Repeat([]byte{0xff}, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		code, offset, err := udp.DecodeAnswer(b)
		if err != nil {
			return
		}
		if offset < 0 || offset > domain.MaxFileSize {
			t.Fatalf("accepted offset %d", offset)
		}
		if code == 0 && len(b) < 41 {
			t.Fatalf("ready answer from %d bytes", len(b))
		}
	})
}

// fixedIdentity is the same in every fuzz worker (the corpus is shared).
func fixedIdentity(f *testing.F, name string, seed byte) domain.LocalIdentity {
	id, err := domain.NewLocalIdentity(domain.MustUsername(name), ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		f.Fatal(err)
	}
	return id
}

func FuzzDecodeSignal(f *testing.F) {
	alice := fixedIdentity(f, "alice", 1)
	bob := fixedIdentity(f, "bob", 2)
	f.Add(udp.NewSignal(alice, udp.SigConnect, [16]byte{1}, bob.Identity, time.UnixMilli(1700000000000),
		netip.MustParseAddrPort("198.51.100.7:41000"), netip.MustParseAddrPort("[2001:db8::1]:41000")))
	f.Add(udp.NewSignal(alice, udp.SigAnswer, [16]byte{2}, bob.Identity, time.UnixMilli(0)))
	f.Add([]byte("CXSG"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, cands, again, err := udp.DecodeSignal(b, alice)
		if err != nil {
			return
		}
		// Only alice's signatures verify with alice's key, and her
		// signatures are deterministic (Ed25519): the bytes must re-encode.
		if len(cands) > 16 {
			t.Fatalf("accepted %d candidates", len(cands))
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}

func FuzzDecodeProbe(f *testing.F) {
	alice := fixedIdentity(f, "alice", 1)
	bob := fixedIdentity(f, "bob", 2)
	f.Add(udp.NewProbe(alice, udp.ProbeReq, [16]byte{1}, alice.Identity.PublicKey(), bob.Identity.PublicKey(), [16]byte{2}, [16]byte{}))
	f.Add(udp.NewProbe(alice, udp.ProbeReply, [16]byte{1}, alice.Identity.PublicKey(), bob.Identity.PublicKey(), [16]byte{3}, [16]byte{2}))
	f.Add([]byte("\x1cxpr"))
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, _, _, from, err := udp.DecodeProbe(b)
		if err != nil {
			return
		}
		if typ != udp.ProbeReq && typ != udp.ProbeReply {
			t.Fatalf("accepted probe type %d", typ)
		}
		if len(from) != 32 {
			t.Fatalf("accepted a %d-byte key", len(from))
		}
	})
}
