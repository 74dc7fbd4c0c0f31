package tui_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/chatx/chatx/adapters/tui"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func waitCall(t *testing.T, f *fakeClient, call string) {
	t.Helper()
	waitUntil(t, "the call "+call, func() bool { return slices.Contains(f.ContactCalls(), call) })
}

func TestRequestsScreenAcceptDeclineBlock(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "alice", peer(t, "bob", true))
	eve, mal, oscar := identity(t, "eve"), identity(t, "mal"), identity(t, "oscar")
	requests := []ports.RequestView{
		{Request: domain.Request{From: eve, Items: 2, First: time.Now(), Last: time.Now()}, Preview: "hi [red]evil[-] \x1b[2J\u202eyo"},
		{Request: domain.Request{From: mal, Items: 3, Offers: 1}, Preview: "buy now"},
		{Request: domain.Request{From: oscar, Items: 1}, Preview: "hello?"},
	}
	fake.SetRequests(requests...)
	s := start(t, fake, tui.Options{}, 140, 40)
	s.waitText("● bob")
	// A request arrives: the user is told, with the count in the status bar.
	fake.emit(t, ports.RequestEvent{Request: requests[0]})
	s.waitText("message request from eve", "3 requests (F3)")

	s.key(tcell.KeyF3)
	screen := s.waitText("Message requests", "eve "+eve.Fingerprint().Short(), "2 messages: hi [red]evil[-]", "mal", "2 messages, 1 file offer: buy now", "oscar")
	for _, bad := range []string{"\x1b", "\u202e"} {
		if strings.Contains(screen, bad) {
			t.Errorf("the screen holds a raw %q from a stranger", bad)
		}
	}
	s.typeText("a") // eve, the first
	waitCall(t, fake, "AcceptRequest eve")
	s.waitFor("eve's request gone", func(screen string) bool { return !strings.Contains(screen, "hi [red]evil") })
	s.typeText("d") // mal
	waitCall(t, fake, "DeclineRequest mal")
	s.waitFor("mal's request gone", func(screen string) bool { return !strings.Contains(screen, "buy now") })
	s.typeText("b") // oscar
	waitCall(t, fake, "Block oscar")
	s.waitText("no message requests")
	s.key(tcell.KeyEscape)
	s.waitFor("the requests screen closed", func(screen string) bool { return !strings.Contains(screen, "Message requests") })
}

func TestContactCommands(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "alice", peer(t, "bob", true), peer(t, "carol", true))
	s := start(t, fake, tui.Options{}, 140, 40)
	s.waitText("● bob")
	s.key(tcell.KeyCtrlN)
	s.waitText("No messages yet with bob")
	for _, c := range []struct{ line, call string }{
		{"/block", "Block bob"},
		{"/unblock bob", "Unblock bob"},
		{"/add dave", "AddContact dave"},
		{"/nick Bobby B", "SetNickname bob Bobby B"},
		{"/nick carol Caro", "SetNickname carol Caro"},
		{"/status busy in a meeting", "SetStatus busy in a meeting"},
	} {
		s.typeText(c.line)
		s.key(tcell.KeyEnter)
		waitCall(t, fake, c.call)
	}
	s.waitText("busy: in a meeting")
	s.typeText("/status asleep")
	s.key(tcell.KeyEnter)
	s.waitText("invalid status")
	s.typeText("/status away " + strings.Repeat("x", 141))
	s.key(tcell.KeyEnter)
	s.waitText("at most 140")
}

func TestPeersShowContactsFirstWithStatusAndADirectorySection(t *testing.T) {
	t.Parallel()
	bob := peer(t, "bob", true)
	bob.Contact, bob.Nickname, bob.Status = true, "Bobby", domain.Status{Availability: domain.Away, Text: "[red]lunch[-]"}
	zed := peer(t, "zed", true)
	zed.Contact = true
	eve := peer(t, "eve", true)
	fake := newFake(t, "alice", eve, zed, bob)
	s := start(t, fake, tui.Options{}, 140, 40)
	screen := s.waitText("● bob (Bobby) away [re", "directory (F4)", "● eve") // the pane cuts the text
	lines := strings.Split(screen, "\n")
	row := func(text string) int {
		return slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, text) })
	}
	if !(row("● bob") < row("● zed") && row("● zed") < row("directory (F4)") && row("directory (F4)") < row("● eve")) {
		t.Fatalf("want contacts bob, zed, then the directory with eve:\n%s", screen)
	}
	s.key(tcell.KeyF4)
	s.waitFor("the directory collapsed", func(screen string) bool {
		return strings.Contains(screen, "▸ directory") && !strings.Contains(screen, "● eve")
	})
	// A contact's status change shows at once.
	fake.emit(t, ports.ContactEvent{Name: domain.MustUsername("zed"), Relation: domain.RelationContact, Status: domain.Status{Availability: domain.Busy, Text: "coding"}})
	s.waitText("zed busy coding")
}

func TestAwayAfterIdleAndBackOnAKey(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "alice", peer(t, "bob", true))
	s := start(t, fake, tui.Options{AwayAfter: 1500 * time.Millisecond}, 140, 40)
	s.waitText("● bob")
	waitUntil(t, "away after the idle time", func() bool { return fake.Status().Availability == domain.Away })
	s.waitText("│ away")
	s.typeText("x")
	waitUntil(t, "online again after a key", func() bool { return fake.Status().Availability == domain.Available })
	s.waitText("│ online")
	// Busy is the user's choice: idleness does not make it away.
	s.key(tcell.KeyBackspace)
	s.typeText("/status busy")
	s.key(tcell.KeyEnter)
	waitUntil(t, "busy", func() bool { return fake.Status().Availability == domain.Busy })
}
