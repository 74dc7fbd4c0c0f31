package app_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/chatx/chatx/domain"
)

// TestE2EAutoAcceptTakesAnOfferStoredBeforeARestart is what `make soak`
// (seed 5) found: a receiver with auto-accept stored an offer and was killed
// before its auto-accept ran; the sender's offer had been delivered, so it
// never offered again, and after the restart the transfer stayed "offered"
// for good. Here bob stores the offer with auto-accept off (the same state
// a kill leaves) and restarts with it on: the file must arrive.
func TestE2EAutoAcceptTakesAnOfferStoredBeforeARestart(t *testing.T) {
	c := newCluster(t)
	alice, bob := c.newNode("alice"), c.newNode("bob")
	alice.mustStart()
	bob.mustStart()
	alice.waitPresence(bob, true)
	data := randomBytes(t, 100<<10)
	alice.local.Put("/a.bin", data)
	tr, err := alice.client.SendFile(context.Background(), bob.me.Name(), "/a.bin")
	if err != nil {
		t.Fatal(err)
	}
	waitTransfer(t, bob, inState(tr.ID(), domain.TransferOffered))
	bob.stop()
	bob.opts.AutoAccept = true
	bob.mustStart()
	waitTransfer(t, bob, inState(tr.ID(), domain.TransferCompleted))
	waitTransfer(t, alice, inState(tr.ID(), domain.TransferCompleted))
	if got, ok := bob.downloads.File("a.bin"); !ok || !bytes.Equal(got, data) {
		t.Fatal("the file did not arrive intact")
	}
}
