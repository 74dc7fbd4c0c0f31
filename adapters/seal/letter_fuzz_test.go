package seal

import (
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// FuzzLetter feeds the letter decoder (what an opened blob holds) any
// bytes: it must never panic or allocate beyond its bounds, and what it
// accepts must encode back to the same bytes.
func FuzzLetter(f *testing.F) {
	from, _ := domain.NewIdentity(domain.MustUsername("alice"), make([]byte, 32))
	to, _ := domain.NewIdentity(domain.MustUsername("bob"), append(make([]byte, 31), 1))
	for _, env := range []ports.Envelope{
		{Kind: ports.KindChat, MessageID: domain.MessageID{1}, SentAt: time.Unix(1, 2), Body: "hi"},
		{Kind: ports.KindOffer, TransferID: domain.TransferID{2}, Manifest: domain.Manifest{Name: "d", Files: []domain.FileEntry{{Path: "d/x", Size: 3}}}},
		{Kind: ports.KindDelivered},
	} {
		b, err := encodeLetter(ports.Letter{From: from, To: to, Expires: time.Unix(100, 0), Envelope: env}, 7)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := &decoder{b: b}
		l, keyID := d.letter()
		if d.err != nil {
			return
		}
		again, err := encodeLetter(l, keyID)
		if err != nil {
			return
		}
		if string(again) != string(b[:len(b)-len(d.b)]) {
			t.Fatalf("decoded letter encodes to other bytes")
		}
	})
}
