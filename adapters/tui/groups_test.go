package tui_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/tui"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
)

// TestGroupSession drives the group commands over real app.Clients on the
// in-memory network: /group new, a message delivered to both members, a
// member's reply, the member list, /kick and /rename.
func TestGroupSession(t *testing.T) {
	t.Parallel()
	reg, err := app.NewRegistry(memory.NewAccountStore(), memory.NewPresenceStore(), memory.NewRealClock(),
		app.RegistryOptions{SessionTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	regDone := make(chan struct{})
	go func() { defer close(regDone); _ = reg.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-regDone })
	network := memory.NewNetwork()
	alice, runAlice := realClient(t, reg, network, "alice", memory.NewLocalFiles(), memory.NewDownloads())
	bob, runBob := realClient(t, reg, network, "bob", memory.NewLocalFiles(), memory.NewDownloads())
	carol, runCarol := realClient(t, reg, network, "carol", memory.NewLocalFiles(), memory.NewDownloads())
	runBob()
	runCarol()

	screen := tcell.NewSimulationScreen("UTF-8")
	ui, cleanup, err := tui.New(alice, screen, tui.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	screen.SetSize(110, 26)
	uiCtx, uiCancel := context.WithCancel(context.Background())
	uiDone := make(chan error, 1)
	go func() { uiDone <- ui.Run(uiCtx) }()
	t.Cleanup(func() {
		uiCancel()
		if err := <-uiDone; err != nil {
			t.Errorf("UI Run: %v", err)
		}
	})
	s := &session{t: t, ui: ui, screen: screen}
	runAlice()
	s.waitText("● bob", "● carol", "registry: connected")

	s.typeText("/group new team bob carol")
	s.key(tcell.KeyEnter)
	s.waitText("# team 3", "# team · alice★, bob, carol")
	s.typeText("hello team")
	s.key(tcell.KeyEnter)
	s.waitText("me: hello team ✓ 2 of 2")

	var id domain.GroupID
	waitUntil(t, "bob knows the group", func() bool {
		gs, err := bob.Groups(t.Context())
		if err != nil || len(gs) != 1 {
			return false
		}
		id = gs[0].Group.ID()
		return true
	})
	if _, err := bob.SendGroup(t.Context(), id, "hi from bob"); err != nil {
		t.Fatal(err)
	}
	s.waitText("bob: hi from bob")

	s.typeText("/members")
	s.key(tcell.KeyEnter)
	s.waitText("3 members: alice (admin), bob, carol")
	s.typeText("/kick carol")
	s.key(tcell.KeyEnter)
	s.waitText("# team 2", "# team · alice★, bob ")
	waitUntil(t, "carol learns she was removed", func() bool {
		v, err := carol.GroupInfo(t.Context(), id)
		return err == nil && !v.Member
	})
	s.typeText("/rename ops")
	s.key(tcell.KeyEnter)
	s.waitText("# ops 2")
	// bob cannot kick: he is no admin.
	if err := bob.RemoveMember(t.Context(), id, domain.MustUsername("alice")); err == nil {
		t.Fatal("bob, no admin, removed alice")
	}
}
