package app

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
)

// FuzzGroupPayloads feeds untrusted bytes to every decoder of the group
// envelope payloads: none may panic or allocate beyond its bounds, and
// whatever decodes encodes back to the same bytes.
func FuzzGroupPayloads(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	me, _ := domain.NewLocalIdentity(domain.MustUsername("alice"), priv)
	_, priv2, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 64)))
	bob, _ := domain.NewLocalIdentity(domain.MustUsername("bob"), priv2)
	id := domain.GroupID{1, 2, 3}
	create, _ := domain.NewGroupEntry(me, id, domain.Epoch{}, domain.GroupCreate, time.Unix(1, 0), []domain.Identity{bob.Identity}, "team")
	log, _ := encodeGroupLog(id, []domain.GroupEntry{create})
	f.Add(log)
	f.Add(groupMessageWire{group: id, epoch: create.Hash(), id: domain.MessageID{4}, sentAt: time.Unix(2, 0), body: "hi"}.encode())
	f.Add(groupRefWire{group: id, id: [16]byte{5}}.encode())
	f.Add(groupAskWire{group: id, head: create.Hash()}.encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		if w, err := decodeGroupMessage(p); err == nil && !bytes.Equal(w.encode(), p) {
			t.Fatalf("message does not round-trip")
		}
		if w, err := decodeGroupRef(p); err == nil && !bytes.Equal(w.encode(), p) {
			t.Fatalf("ref does not round-trip")
		}
		if w, err := decodeGroupAsk(p); err == nil && !bytes.Equal(w.encode(), p) {
			t.Fatalf("ask does not round-trip")
		}
		if g, entries, err := decodeGroupLog(p); err == nil {
			again, err := encodeGroupLog(g, entries)
			if err != nil || !bytes.Equal(again, p) {
				t.Fatalf("log does not round-trip: %v", err)
			}
		}
	})
}
