package tui_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/chatx/chatx/adapters/tui"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// at is 23 November 2026 at hh:mm UTC.
func at(hh, mm int) time.Time { return time.Date(2026, 11, 23, hh, mm, 0, 0, time.UTC) }

func mustTransfer(t *testing.T, peer string, dir domain.Direction, name string, size int64, created time.Time) domain.Transfer {
	t.Helper()
	m, err := domain.NewManifest(name, []domain.FileEntry{{Path: name, Size: size}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := domain.NewTransfer(domain.NewTransferID(), domain.MustUsername(peer), dir, m, created)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTransfersInConversationTimeline shows each transfer with the open
// peer as a line of the conversation at the time it was offered, and keeps
// the line up to date as the transfer moves on.
func TestTransfersInConversationTimeline(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true), peer(t, "dave", true))
	first, err := domain.NewIncomingMessage(domain.NewMessageID(), domain.MustUsername("bob"), domain.MustUsername("carol"), at(9, 30), "sending the report")
	must(t, err)
	last, err := domain.NewIncomingMessage(domain.NewMessageID(), domain.MustUsername("bob"), domain.MustUsername("carol"), at(9, 50), "got it?")
	must(t, err)
	fake.history["bob"] = []domain.Message{first, last}

	report := mustTransfer(t, "bob", domain.Incoming, "report.pdf", 2200000, at(9, 40))
	must(t, report.Accept(at(9, 40)))
	must(t, report.Start(0, at(9, 40)))
	must(t, report.Progress(2200000, at(9, 41)))
	must(t, report.Verify(at(9, 41)))
	must(t, report.Complete(at(9, 41)))
	must(t, report.RecordSaved("report (1).pdf"))
	iso := mustTransfer(t, "bob", domain.Outgoing, "big.iso", 5<<30, at(9, 45))
	must(t, iso.DeclineBecause("declined by bob: too large", at(9, 46)))
	other := mustTransfer(t, "dave", domain.Outgoing, "for-dave.txt", 10, at(9, 35))
	fake.transfers = []domain.Transfer{report, iso, other}

	s := start(t, fake, tui.Options{Location: time.UTC, DownloadDir: "/home/carol/Downloads"}, 150, 30)
	s.waitText("● bob")
	s.key(tcell.KeyCtrlN)
	lines := []string{
		"09:30 bob: sending the report",
		"09:40 ↓ report.pdf 2.1 MiB — completed, saved to /home/carol/Downloads/report (1).pdf",
		"09:45 ↑ big.iso 5.0 GiB — declined by bob: too large",
		"09:50 bob: got it?",
	}
	screen := s.waitText(lines...)
	pos := -1
	for _, l := range lines {
		i := strings.Index(screen, l)
		if i < pos {
			t.Fatalf("%q is out of order in the conversation:\n%s", l, screen)
		}
		pos = i
	}
	if strings.Contains(screen, "for-dave.txt 10 B —") {
		t.Fatalf("dave's transfer is in bob's conversation:\n%s", screen)
	}

	// A new offer appears, then its line follows the transfer.
	notes := mustTransfer(t, "bob", domain.Outgoing, "notes.txt", 2048, time.Now())
	s.fake.emit(t, ports.TransferEvent{Transfer: notes})
	s.waitText("↑ notes.txt 2.0 KiB — waiting for an answer")
	must(t, notes.Accept(time.Now()))
	must(t, notes.Start(0, time.Now()))
	must(t, notes.Progress(1024, time.Now()))
	s.fake.emit(t, ports.TransferEvent{Transfer: notes})
	s.waitText("↑ notes.txt 2.0 KiB — in progress 50%")
	must(t, notes.Fail("the peer's disk is full", time.Now()))
	s.fake.emit(t, ports.TransferEvent{Transfer: notes})
	s.waitText("↑ notes.txt 2.0 KiB — ✗ failed: the peer's disk is full")
}
