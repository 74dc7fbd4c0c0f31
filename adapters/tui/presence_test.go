package tui_test

import (
	"strings"
	"testing"

	"github.com/chatx/chatx/adapters/tui"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// TestPeerListDoesNotUndoNewerPresence: the peer list asked for at start
// answers after the directory said bob came online; bob stays online
// (issue 10, item 8: a restarted client showed its peer offline until the
// peer's next presence change).
func TestPeerListDoesNotUndoNewerPresence(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", false), peer(t, "dave", false))
	gate := make(chan struct{})
	fake.peersGate, fake.peersAsked = gate, make(chan struct{}, 16)
	s := start(t, fake, tui.Options{}, 100, 30)
	<-fake.peersAsked // the start-up list is being computed
	s.fake.emit(t, ports.PresenceEvent{Peer: domain.Peer{Identity: identity(t, "bob"), Online: true}})
	s.waitText("● bob")
	close(gate) // the list computed before bob came online arrives now
	screen := s.waitText("○ dave")
	if !strings.Contains(screen, "● bob") || strings.Contains(screen, "○ bob") {
		t.Fatalf("the older peer list undid bob's presence:\n%s", screen)
	}
	// A later event still moves him.
	s.fake.emit(t, ports.PresenceEvent{Peer: domain.Peer{Identity: identity(t, "bob")}})
	s.waitText("○ bob")
}
