package tui_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/chatx/chatx/adapters/tui"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func TestNamePrompt(t *testing.T) {
	t.Parallel()
	validate := func(s string) error { _, err := domain.ParseUsername(s); return err }
	tests := []struct {
		name    string
		steps   []string // typed texts, each followed by Enter; all but the last are refused
		refusal string   // shown after a refused attempt
		cancel  bool
		want    string
		wantErr error
	}{
		{name: "valid", steps: []string{"alice"}, want: "alice"},
		{name: "invalid then valid", steps: []string{"a!", "alice_2"}, refusal: "invalid username", want: "alice_2"},
		{name: "too short", steps: []string{"ab", "abc"}, refusal: "shorter than 3", want: "abc"},
		{name: "escape cancels", cancel: true, wantErr: tui.ErrCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			screen := tcell.NewSimulationScreen("UTF-8")
			p := tui.NewNamePrompt(screen, validate)
			type result struct {
				name string
				err  error
			}
			done := make(chan result, 1)
			go func() {
				name, err := p.Run()
				done <- result{name, err}
			}()
			read := func() (string, error) { return p.ScreenText(), nil }
			waitScreen(t, "the prompt", containsAll("Enter your username", "Name:"), read)
			for i, step := range tc.steps {
				for _, r := range step {
					screen.InjectKey(tcell.KeyRune, r, tcell.ModNone)
				}
				waitScreen(t, "typed "+step, containsAll("Name: "+step), read)
				if i < len(tc.steps)-1 {
					screen.InjectKey(tcell.KeyEnter, 0, tcell.ModNone)
					waitScreen(t, "the refusal", containsAll("✗", tc.refusal), read)
					for range step {
						screen.InjectKey(tcell.KeyBackspace, 0, tcell.ModNone)
					}
					waitScreen(t, "an empty field", func(s string) bool { return !strings.Contains(s, "Name: "+step) }, read)
					continue
				}
				screen.InjectKey(tcell.KeyEnter, 0, tcell.ModNone)
			}
			if tc.cancel {
				screen.InjectKey(tcell.KeyEscape, 0, tcell.ModNone)
			}
			select {
			case r := <-done:
				if !errors.Is(r.err, tc.wantErr) || r.name != tc.want {
					t.Fatalf("Run() = %q, %v; want %q, %v", r.name, r.err, tc.want, tc.wantErr)
				}
			case <-time.After(waitTimeout):
				t.Fatal("the prompt did not return")
			}
		})
	}
}

func TestPickPeerTypeAndSend(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "alice", false), peer(t, "bob", true))
	old, err := domain.NewIncomingMessage(domain.NewMessageID(), domain.MustUsername("bob"), domain.MustUsername("carol"),
		time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC), "morning carol")
	if err != nil {
		t.Fatal(err)
	}
	fake.history["bob"] = []domain.Message{old}
	s := start(t, fake, tui.Options{}, 100, 30)

	// bob is online, so he is listed first; Ctrl-N opens him.
	s.waitText("● bob", "○ alice", "carol", "127.0.0.1:4100")
	s.key(tcell.KeyCtrlN)
	s.waitText("Monday, 23 November 2026", "09:30 bob: morning carol", "bob online")

	s.typeText("hello bob")
	s.key(tcell.KeyEnter)
	waitUntil(t, "the message sent", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) { ok = len(f.sent) == 1 })
		return ok
	})
	s.fake.snapshot(func(f *fakeClient) {
		if got := f.sent[0]; got != (sentText{"bob", "hello bob"}) {
			t.Errorf("sent %+v", got)
		}
	})
	screen := s.waitText("me: hello bob …")
	if strings.Contains(screen, "> hello bob") {
		t.Error("the input line was not cleared after sending")
	}

	// The delivery state moves: ✓✓ once delivered.
	id := s.fake.lastID(t)
	s.fake.emit(t, ports.MessageStateEvent{ID: id, Peer: domain.MustUsername("bob"), State: domain.MessageDelivered})
	s.waitText("me: hello bob ✓✓")

	// Typing told bob.
	s.fake.snapshot(func(f *fakeClient) {
		if len(f.typing) == 0 || f.typing[0] != "bob" {
			t.Errorf("typing notices: %v", f.typing)
		}
	})

	// The input history brings the line back.
	s.key(tcell.KeyUp)
	s.waitText("> hello bob")
}

func TestIncomingMessageAndUnread(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "alice", true), peer(t, "bob", true))
	s := start(t, fake, tui.Options{}, 100, 30)
	s.waitText("● alice", "● bob")
	s.key(tcell.KeyCtrlN) // alice
	s.waitText("No messages yet with alice")

	s.fake.emit(t, ports.TypingEvent{From: domain.MustUsername("alice")})
	s.waitText("alice online typing…")
	s.fake.deliver(t, incoming(t, "alice", "carol", "hi from alice"))
	s.waitText("alice: hi from alice")

	// A message for another conversation counts as unread there.
	s.fake.deliver(t, incoming(t, "bob", "carol", "psst"))
	s.waitText("● bob (1)")
	s.key(tcell.KeyCtrlG) // jump to the next unread
	screen := s.waitText("bob: psst")
	if strings.Contains(screen, "(1)") {
		t.Error("unread count still shown after opening the conversation")
	}
}

func incoming(t testing.TB, from, to, body string) domain.Message {
	t.Helper()
	m, err := domain.NewIncomingMessage(domain.NewMessageID(), domain.MustUsername(from), domain.MustUsername(to), time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOfferAcceptedWithProgress(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	s := start(t, fake, tui.Options{DownloadDir: "/home/carol/Downloads"}, 150, 32)
	s.waitText("● bob")

	const size = 4 << 20
	m, err := domain.NewManifest("report.pdf", []domain.FileEntry{{Path: "report.pdf", Size: size}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	tr, err := domain.NewTransfer(domain.NewTransferID(), domain.MustUsername("bob"), domain.Incoming, m, t0)
	if err != nil {
		t.Fatal(err)
	}
	s.fake.emit(t, ports.TransferEvent{Transfer: tr})
	s.waitText("bob offers you:", "report.pdf", "4.0 MiB", "a accept", "d decline")

	s.typeText("a")
	waitUntil(t, "the offer accepted", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) { ok = len(f.accepted) == 1 && f.accepted[0] == tr.ID() })
		return ok
	})
	s.waitFor("the dialog closed", func(screen string) bool { return !strings.Contains(screen, "offers you:") })

	// Progress: half the bytes in two seconds.
	for _, step := range []func(*domain.Transfer) error{
		func(x *domain.Transfer) error { return x.Accept(t0) },
		func(x *domain.Transfer) error { return x.Start(0, t0) },
		func(x *domain.Transfer) error { return x.Progress(size/2, t0.Add(2*time.Second)) },
	} {
		if err := step(&tr); err != nil {
			t.Fatal(err)
		}
	}
	s.fake.emit(t, ports.TransferEvent{Transfer: tr})
	s.waitText("↓ bob report.pdf 4.0 MiB", "██████░░░░░░", "50%", "1.0 MiB/s", "ETA 0:02")

	if err := tr.Verify(t0.Add(4 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := tr.RecordSaved("report (1).pdf"); err != nil { // a report.pdf was there already
		t.Fatal(err)
	}
	if err := tr.Complete(t0.Add(4 * time.Second)); err != nil {
		t.Fatal(err)
	}
	s.fake.emit(t, ports.TransferEvent{Transfer: tr})
	s.waitText("report.pdf 4.0 MiB ✓ completed in 0:04, average 1.0 MiB/s — saved as report (1).pdf",
		"✓ report.pdf saved to /home/carol/Downloads/report (1).pdf")
	s.key(tcell.KeyCtrlT)
	s.typeText("a") // another notice in its place
	s.waitFor("the notice replaced", func(screen string) bool {
		return strings.Contains(screen, "not an offer waiting") && !strings.Contains(screen, "saved to")
	})
	s.key(tcell.KeyEnter) // on the finished row: where is it?
	s.waitText("saved to /home/carol/Downloads/report (1).pdf")
}

func TestOfferDeclinedFromTransfersPane(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	s := start(t, fake, tui.Options{}, 110, 32)
	s.waitText("● bob")
	m, _ := domain.NewManifest("photos", []domain.FileEntry{{Path: "photos/a.jpg", Size: 10}, {Path: "photos/b.jpg", Size: 20}})
	tr, err := domain.NewTransfer(domain.NewTransferID(), domain.MustUsername("bob"), domain.Incoming, m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.fake.emit(t, ports.TransferEvent{Transfer: tr})
	s.waitText("a folder of 2 files, 30 B")
	s.key(tcell.KeyEscape) // decide later
	s.waitText("photos (2 files) 30 B offered — a accept · d decline")
	s.key(tcell.KeyCtrlT)
	s.typeText("d")
	waitUntil(t, "the offer declined", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) { ok = len(f.declined) == 1 && f.declined[0] == tr.ID() })
		return ok
	})
}

func TestKeyChangeWarningBlocks(t *testing.T) {
	t.Parallel()
	for _, accept := range []bool{true, false} {
		t.Run(map[bool]string{true: "accept", false: "keep blocked"}[accept], func(t *testing.T) {
			t.Parallel()
			fake := newFake(t, "carol", peer(t, "bob", true), peer(t, "dave", true))
			s := start(t, fake, tui.Options{}, 100, 30)
			s.waitText("● bob")
			s.key(tcell.KeyCtrlN)
			s.waitText("No messages yet with bob")

			old, nw := identity(t, "bob").Fingerprint(), identity(t, "mallory").Fingerprint()
			s.fake.emit(t, ports.KeyChangedEvent{Name: domain.MustUsername("bob"), Old: old, New: nw})
			s.waitText("The key of bob has changed", old.String()[:39], nw.String()[:39], "● bob ⚠")

			// Blocking: other keys do nothing while the warning is up.
			s.key(tcell.KeyCtrlN)
			s.typeText("xyz")
			s.key(tcell.KeyF1)
			screen := s.waitText("The key of bob has changed")
			if strings.Contains(screen, "xyz") || strings.Contains(screen, "dave online") || strings.Contains(screen, "Help") {
				t.Fatalf("a key got past the warning:\n%s", screen)
			}

			if accept {
				s.typeText("a")
				waitUntil(t, "the key accepted", func() (ok bool) {
					s.fake.snapshot(func(f *fakeClient) { ok = len(f.keyAccepted) == 1 && f.keyAccepted[0] == "bob" })
					return ok
				})
				s.waitFor("the mark cleared", func(screen string) bool {
					return !strings.Contains(screen, "⚠") && !strings.Contains(screen, "has changed")
				})
				return
			}
			s.typeText("k")
			s.waitText("bob stays blocked", "● bob ⚠", "key changed: sending blocked")
			s.fake.snapshot(func(f *fakeClient) {
				if len(f.keyAccepted) != 0 {
					t.Error("the key was accepted")
				}
			})
		})
	}
}

func TestHostileTextShownLiterally(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	const body = "[red]x[-] [::b]bold[::-] [\"r\"]region[\"\"] \x1b[31mansi\x1b[0m \u202eevil\u202c \a end["
	fake.history["bob"] = []domain.Message{incoming(t, "bob", "carol", body)}
	s := start(t, fake, tui.Options{}, 170, 30)
	s.waitText("● bob")
	s.key(tcell.KeyCtrlN)
	s.fake.emit(t, ports.DirectoryStatusEvent{Connected: false, Err: "[yellow]dial[-] \x1b[2J"})
	m, err := domain.NewManifest("[red]evil[-].txt", []domain.FileEntry{{Path: "[red]evil[-].txt", Size: 1}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := domain.NewTransfer(domain.NewTransferID(), domain.MustUsername("bob"), domain.Incoming, m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.fake.emit(t, ports.TransferEvent{Transfer: tr})
	s.waitText("offers you:", "[red]evil[-].txt")
	s.key(tcell.KeyEscape)

	screen := s.waitText(
		`bob: [red]x[-] [::b]bold[::-] ["r"]region[""] \x1b[31mansi\x1b[0m \u202eevil\u202c \x07 end[`,
		`registry: unreachable ([yellow]dial[-] \x1b[2J)`,
		"↓ bob [red]evil[-].txt",
	)
	for _, bad := range []string{"\x1b", "\u202e", "\u202c", "\a"} {
		if strings.Contains(screen, bad) {
			t.Errorf("the screen holds a raw %q", bad)
		}
	}
}

func TestHelpListsEveryBinding(t *testing.T) {
	t.Parallel()
	s := start(t, newFake(t, "carol"), tui.Options{}, 160, 130)
	s.waitText("F1 help")
	s.key(tcell.KeyF1)
	var want []string
	for _, b := range tui.DefaultBindings() {
		want = append(want, b.Description)
	}
	for _, c := range tui.DefaultCommands() {
		want = append(want, strings.TrimSpace("/"+c.Name+" "+c.Args), c.Description)
	}
	if len(want) < 40 {
		t.Fatalf("only %d bindings and commands", len(want))
	}
	s.waitText(want...)
	s.key(tcell.KeyEscape)
	s.waitFor("the help closed", func(screen string) bool { return !strings.Contains(screen, "Help — Esc closes") })
}

func TestSendFileByPathWithCompletion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "report.pdf"), []byte("pdf"), 0o600); err != nil {
		t.Fatal(err)
	}
	fake := newFake(t, "carol", peer(t, "bob", true))
	s := start(t, fake, tui.Options{}, 160, 30)
	s.waitText("● bob")
	s.key(tcell.KeyCtrlN)
	s.waitText("No messages yet with bob")
	s.typeText("/se")
	s.key(tcell.KeyTab)
	s.waitText("> /se", "search  send") // two candidates: listed
	s.typeText("n")
	s.key(tcell.KeyTab)
	s.waitText("> /send")
	s.typeText(dir + "/rep")
	s.key(tcell.KeyTab)
	s.waitText("> /send " + dir + "/report.pdf")
	s.key(tcell.KeyEnter)
	waitUntil(t, "the file offered", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) {
			ok = len(f.files) == 1 && f.files[0] == sentFile{"bob", filepath.Join(dir, "report.pdf")}
		})
		return ok
	})
	s.waitText("↑ to bob")
}

func TestSendFileFromBrowser(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "album"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fake := newFake(t, "carol", peer(t, "bob", true))
	s := start(t, fake, tui.Options{BrowseDir: dir}, 120, 40)
	s.waitText("● bob")
	s.key(tcell.KeyCtrlN)
	s.waitText("No messages yet with bob")
	s.key(tcell.KeyCtrlO)
	s.waitText("Send a file to bob", "album/", "notes.txt")
	s.key(tcell.KeyDown) // album/
	s.key(tcell.KeyDown) // notes.txt
	s.key(tcell.KeyEnter)
	waitUntil(t, "the file offered", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) {
			ok = len(f.files) == 1 && f.files[0] == sentFile{"bob", filepath.Join(dir, "notes.txt")}
		})
		return ok
	})
	// A folder is sent with s.
	s.key(tcell.KeyCtrlO)
	s.waitText("album/")
	s.key(tcell.KeyDown)
	s.typeText("s")
	waitUntil(t, "the folder offered", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) {
			ok = len(f.files) == 2 && f.files[1] == sentFile{"bob", filepath.Join(dir, "album")}
		})
		return ok
	})
}

func TestSafetyNumberVerify(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	bob := identity(t, "bob")
	fake.safety["bob"] = ports.SafetyView{
		Name:         bob.Name(),
		SafetyNumber: domain.SafetyNumber(fake.me.PublicKey(), bob.PublicKey()),
		Ours:         fake.me.Fingerprint(),
		Theirs:       bob.Fingerprint(),
	}
	s := start(t, fake, tui.Options{}, 110, 34)
	s.waitText("● bob")
	s.key(tcell.KeyCtrlN)
	s.waitText("No messages yet with bob")
	s.key(tcell.KeyCtrlS)
	groups := strings.Fields(fake.safety["bob"].SafetyNumber)
	s.waitText(strings.Join(groups[:4], " "), strings.Join(groups[8:], " "), "Status: not verified", bob.Fingerprint().String()[:39])
	s.typeText("v")
	s.waitText("Status: ✔ verified", "● bob ✔")
	s.fake.snapshot(func(f *fakeClient) {
		if !f.verified["bob"] {
			t.Error("bob not marked verified")
		}
	})
}

func TestSearchAndCommands(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	fake.searchRes = []domain.Message{incoming(t, "bob", "carol", "the lunch plan")}
	s := start(t, fake, tui.Options{}, 110, 30)
	s.waitText("● bob")
	s.typeText("/search lunch")
	s.key(tcell.KeyEnter)
	s.waitText("Search: lunch", "bob → carol: the lunch plan", "1 message found")
	s.key(tcell.KeyEscape)
	s.waitFor("the search closed", func(screen string) bool { return !strings.Contains(screen, "Search: lunch") })

	s.typeText("/nope")
	s.key(tcell.KeyEnter)
	s.waitText("unknown command /nope")

	s.typeText("hi")
	s.key(tcell.KeyEnter)
	s.waitText("pick a peer first")
}

func TestFilterPeers(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "alice", true), peer(t, "bob", true), peer(t, "bobby", false))
	s := start(t, fake, tui.Options{}, 100, 30)
	s.waitText("● alice", "● bob", "○ bobby")
	s.key(tcell.KeyCtrlF)
	s.typeText("bo")
	screen := s.waitText("Peers /bo", "● bob", "○ bobby")
	if strings.Contains(screen, "alice") {
		t.Errorf("alice still listed under the filter:\n%s", screen)
	}
	s.key(tcell.KeyBackspace)
	s.typeText("x")
	s.waitText("Peers /bx", "no peer matches")
	s.key(tcell.KeyEscape) // clears the filter
	s.waitText("● alice", "● bob", "○ bobby", "Peers ─")
	s.key(tcell.KeyCtrlF)
	s.typeText("bo")
	s.waitText("Peers /bo")
	s.key(tcell.KeyEnter) // the first match, bob
	s.waitText("No messages yet with bob")
	s.typeText("hi")
	s.waitText("> hi")
}

func TestQuitKeyEndsRun(t *testing.T) {
	t.Parallel()
	screen := tcell.NewSimulationScreen("UTF-8")
	ui, cleanup, err := tui.New(newFake(t, "carol"), screen, tui.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	done := make(chan error, 1)
	go func() { done <- ui.Run(t.Context()) }()
	waitScreen(t, "the UI", containsAll("Peers"), ui.ScreenText)
	screen.InjectKey(tcell.KeyCtrlQ, 0, tcell.ModNone)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Ctrl-Q did not end Run")
	}
	if _, err := ui.ScreenText(); !errors.Is(err, tui.ErrNotRunning) {
		t.Fatalf("ScreenText after Run: %v", err)
	}
}

func TestResize(t *testing.T) {
	t.Parallel()
	s := start(t, newFake(t, "carol", peer(t, "bob", true)), tui.Options{}, 120, 40)
	s.waitText("● bob", "registry: connecting")
	s.screen.SetSize(60, 16)
	s.fake.emit(t, ports.DirectoryStatusEvent{Connected: true})
	screen := s.waitText("● registry: connected", "● bob")
	lines := strings.Split(strings.TrimSuffix(screen, "\n"), "\n")
	if len(lines) != 16 {
		t.Fatalf("%d lines after the resize, want 16", len(lines))
	}
	for _, l := range lines {
		if n := len([]rune(l)); n > 60 {
			t.Fatalf("line of %d cells after the resize: %q", n, l)
		}
	}
}

func TestMouseSelectsPeer(t *testing.T) {
	t.Parallel()
	s := start(t, newFake(t, "carol", peer(t, "alice", true), peer(t, "bob", true)), tui.Options{}, 100, 30)
	s.waitText("● alice", "● bob")
	// The peers pane has a border: its second row is on screen row 2.
	s.screen.InjectMouse(3, 2, tcell.Button1, tcell.ModNone)
	s.screen.InjectMouse(3, 2, tcell.ButtonNone, tcell.ModNone)
	s.waitText("bob online", "No messages yet with bob")
	// Typing in the peers pane filters it; after a click on the
	// conversation, typing goes to the input line.
	s.typeText("bo")
	s.waitText("Peers /bo")
	s.screen.InjectMouse(50, 10, tcell.Button1, tcell.ModNone)
	s.screen.InjectMouse(50, 10, tcell.ButtonNone, tcell.ModNone)
	s.typeText("hey")
	s.waitText("> hey")
}

func TestScrollback(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	for i := range 80 {
		m, err := domain.NewIncomingMessage(domain.NewMessageID(), domain.MustUsername("bob"), domain.MustUsername("carol"),
			base.Add(time.Duration(i)*time.Minute), fmt.Sprintf("line %02d", i))
		if err != nil {
			t.Fatal(err)
		}
		fake.history["bob"] = append(fake.history["bob"], m)
	}
	s := start(t, fake, tui.Options{}, 100, 30)
	s.waitText("● bob")
	s.key(tcell.KeyCtrlN)
	screen := s.waitText("bob: line 79")
	if strings.Contains(screen, "bob: line 00") {
		t.Fatal("the oldest line is shown before scrolling back")
	}
	for range 6 {
		s.key(tcell.KeyPgUp)
	}
	screen = s.waitText("bob: line 00", "Friday, 20 November 2026")
	if strings.Contains(screen, "bob: line 79") {
		t.Fatal("the newest line still shown after scrolling back")
	}
	for range 6 {
		s.key(tcell.KeyPgDn)
	}
	s.waitText("bob: line 79")
	// At the end again, new messages keep the view at the end.
	s.fake.deliver(t, incoming(t, "bob", "carol", "line 80"))
	s.waitText("bob: line 80")
}

func TestCleanupWithoutRun(t *testing.T) {
	t.Parallel()
	screen := tcell.NewSimulationScreen("UTF-8")
	ui, cleanup, err := tui.New(newFake(t, "carol"), screen, tui.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	if _, w, h := screen.GetContents(); w != 0 || h != 0 {
		t.Errorf("screen not finalised: %dx%d", w, h)
	}
	if err := ui.Run(t.Context()); err == nil {
		t.Error("Run after the cleanup succeeded")
	}
}

func TestCleanupStopsRun(t *testing.T) {
	t.Parallel()
	screen := tcell.NewSimulationScreen("UTF-8")
	ui, cleanup, err := tui.New(newFake(t, "carol"), screen, tui.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ui.Run(t.Context()) }()
	waitScreen(t, "the UI", containsAll("Peers"), ui.ScreenText)
	cleanup() // returns once Run has returned
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
	}
	if _, w, h := screen.GetContents(); w != 0 || h != 0 {
		t.Errorf("screen not finalised: %dx%d", w, h)
	}
}

func TestSendBlockedByKeyChange(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	old, nw := identity(t, "bob").Fingerprint(), identity(t, "mallory").Fingerprint()
	fake.sendErr = &domain.KeyChangedError{Name: domain.MustUsername("bob"), Old: old, New: nw}
	s := start(t, fake, tui.Options{}, 100, 30)
	s.waitText("● bob")
	s.key(tcell.KeyCtrlN)
	s.waitText("No messages yet with bob")
	s.typeText("are you there?")
	s.key(tcell.KeyEnter)
	s.waitText("The key of bob has changed", nw.String()[:39])
	s.key(tcell.KeyEscape)
	s.waitText("● bob ⚠", "bob stays blocked")
}

func TestPendingKeyChangeAtStart(t *testing.T) {
	t.Parallel()
	bob := peer(t, "bob", true)
	bob.KeyChanged = true
	s := start(t, newFake(t, "carol", bob), tui.Options{}, 100, 30)
	s.waitText("The key of bob has changed", "● bob ⚠")
}

func TestCancelTransfer(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	m, err := domain.NewManifest("big.iso", []domain.FileEntry{{Path: "big.iso", Size: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	up, err := domain.NewTransfer(domain.NewTransferID(), domain.MustUsername("bob"), domain.Outgoing, m, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Accept(now); err != nil {
		t.Fatal(err)
	}
	if err := up.Start(0, now); err != nil {
		t.Fatal(err)
	}
	down, err := domain.NewTransfer(domain.NewTransferID(), domain.MustUsername("bob"), domain.Incoming, m, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := down.Decline(now); err != nil {
		t.Fatal(err)
	}
	fake.transfers = []domain.Transfer{up, down} // newest first
	s := start(t, fake, tui.Options{}, 110, 30)
	s.waitText("↑ to bob big.iso 1.0 GiB", "  0%", "↓ bob big.iso 1.0 GiB declined")

	// From the pane: c on the selected (first) transfer.
	s.key(tcell.KeyCtrlT)
	s.typeText("c")
	waitUntil(t, "the transfer cancelled", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) { ok = len(f.cancelled) == 1 && f.cancelled[0] == up.ID() })
		return ok
	})
	s.waitText("cancelled big.iso")

	// By command, with an ID prefix.
	s.key(tcell.KeyEscape)
	s.typeText("/cancel " + up.ID().Short())
	s.key(tcell.KeyEnter)
	waitUntil(t, "the transfer cancelled by command", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) { ok = len(f.cancelled) == 2 && f.cancelled[1] == up.ID() })
		return ok
	})
}

// TestNamePromptAgainAfterTakenName: the dialog that follows a taken name
// says why and takes another.
func TestNamePromptAgainAfterTakenName(t *testing.T) {
	t.Parallel()
	screen := tcell.NewSimulationScreen("UTF-8")
	p := tui.NewNamePrompt(screen, nil).WithReason(`The name "alice" is taken: the registry knows it by another key. Pick another one.`)
	done := make(chan string, 1)
	go func() {
		name, err := p.Run()
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- name
	}()
	read := func() (string, error) { return p.ScreenText(), nil }
	waitScreen(t, "the reason", containsAll("Name:", `"alice" is taken`, "Pick another"), read)
	for _, r := range "alice2" {
		screen.InjectKey(tcell.KeyRune, r, tcell.ModNone)
	}
	waitScreen(t, "typed", containsAll("Name: alice2"), read)
	screen.InjectKey(tcell.KeyEnter, 0, tcell.ModNone)
	select {
	case name := <-done:
		if name != "alice2" {
			t.Fatalf("Run() = %q, want alice2", name)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the prompt did not return")
	}
}

// TestFilterSelectsTheMatchAndHidesNothing: with dave open, filtering for
// bob and pressing Enter opens bob (the line goes to bob, not to dave); a
// message from someone filtered out still counts, rings the bell and shows.
func TestFilterSelectsTheMatchAndHidesNothing(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "alice", true), peer(t, "bob", true), peer(t, "dave", true))
	screen := &beepScreen{SimulationScreen: tcell.NewSimulationScreen("UTF-8")}
	s := startOn(t, screen, fake, tui.Options{}, 100, 30)
	s.waitText("● alice", "● bob", "● dave")
	for range 3 {
		s.key(tcell.KeyCtrlN)
	}
	s.waitText("No messages yet with dave")

	s.key(tcell.KeyCtrlF)
	s.typeText("bob")
	s.waitText("Peers /bob")
	s.key(tcell.KeyEnter)
	s.waitText("No messages yet with bob", "Peers ─")
	s.typeText("for bob")
	s.key(tcell.KeyEnter)
	waitUntil(t, "the message sent", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) { ok = len(f.sent) == 1 })
		return ok
	})
	s.fake.snapshot(func(f *fakeClient) {
		if got := f.sent[0]; got != (sentText{"bob", "for bob"}) {
			t.Errorf("sent %+v, want it to bob", got)
		}
	})

	s.key(tcell.KeyCtrlF)
	s.typeText("bo")
	s.waitText("Peers /bo")
	s.fake.deliver(t, incoming(t, "alice", "carol", "are you there"))
	s.waitText("Peers /bo +1 unread")
	if screen.beeps.Load() == 0 {
		t.Error("no bell for a message in a conversation not on screen")
	}
	s.key(tcell.KeyEscape)
	s.waitText("● alice (1)")
}

// TestFailedAcceptKeepsTheDialog: an accept the client refuses (over the
// size limit) shows why in the dialog, which keeps the keys; the decline
// that follows shows who and why; Esc closes and typing goes to the input.
func TestFailedAcceptKeepsTheDialog(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	fake.acceptErr = fmt.Errorf("transfer x: %w: 5000 bytes is over the limit of 1000 (declined, the sender is told)", domain.ErrTooLarge)
	s := start(t, fake, tui.Options{}, 110, 32)
	s.waitText("● bob")
	m, _ := domain.NewManifest("big.iso", []domain.FileEntry{{Path: "big.iso", Size: 5000}})
	tr, err := domain.NewTransfer(domain.NewTransferID(), domain.MustUsername("bob"), domain.Incoming, m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.fake.emit(t, ports.TransferEvent{Transfer: tr})
	s.waitText("bob offers you:", "big.iso")
	s.typeText("a")
	s.waitText("bob offers you:", "✗ transfer x: too large: 5000 bytes is over the limit of 1000")
	s.typeText("xyz") // still the dialog's keys, not the input line's
	if err := tr.DeclineBecause("declined by you: too large", time.Now()); err != nil {
		t.Fatal(err)
	}
	s.fake.emit(t, ports.TransferEvent{Transfer: tr})
	screen := s.waitText("bob offers you:", "✗ declined by you: too large", "Esc close")
	if strings.Contains(screen, "> xyz") {
		t.Fatalf("keys typed at the dialog landed in the input line:\n%s", screen)
	}
	s.key(tcell.KeyEscape)
	s.waitFor("the dialog closed", func(screen string) bool { return !strings.Contains(screen, "offers you:") })
	s.waitText("big.iso 4.9 KiB declined by you: too large")
	s.typeText("hi")
	s.waitText("> hi")
}

// TestRegistryCertificateMismatchWarns: a certificate that does not match
// the pin gets a blocking warning, not a truncated status line.
func TestRegistryCertificateMismatchWarns(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	s := start(t, fake, tui.Options{}, 110, 32)
	s.waitText("● bob")
	s.fake.emit(t, ports.DirectoryStatusEvent{Err: "REGISTRY CERTIFICATE MISMATCH for reg:5000: pinned sha256=aa (URL), server presented sha256=bb.", CertChanged: true})
	s.waitText("REGISTRY CERTIFICATE CHANGED", "Someone may be intercepting", "pinned sha256=aa")
	s.typeText("hi")
	s.key(tcell.KeyEscape)
	screen := s.waitFor("the warning closed", func(screen string) bool { return !strings.Contains(screen, "CERTIFICATE CHANGED") })
	if strings.Contains(screen, "> hi") {
		t.Fatal("keys typed at the warning reached the input line")
	}
	// The same mismatch again (the client retries) does not pop up again.
	s.fake.emit(t, ports.DirectoryStatusEvent{Err: "REGISTRY CERTIFICATE MISMATCH for reg:5000: pinned sha256=aa (URL), server presented sha256=bb.", CertChanged: true})
	s.typeText("ok")
	if screen := s.waitText("> ok"); strings.Contains(screen, "CERTIFICATE CHANGED") {
		t.Fatal("the same warning popped up again")
	}
}

// TestDraftsPerConversation: text typed before picking a peer is kept and
// goes to the first conversation opened; each conversation keeps its own
// unsent line, so a draft never goes to the wrong peer.
func TestDraftsPerConversation(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "alice", true), peer(t, "bob", true))
	s := start(t, fake, tui.Options{}, 100, 30)
	s.waitText("● alice", "● bob")
	s.typeText("early words")
	s.key(tcell.KeyEnter) // no peer yet: refused, kept
	s.waitText("pick a peer first", "> early words")
	s.key(tcell.KeyCtrlN) // alice
	s.waitText("No messages yet with alice", "> early words")
	s.key(tcell.KeyCtrlN) // bob: alice's draft stays with alice
	screen := s.waitText("No messages yet with bob")
	if strings.Contains(screen, "early words") {
		t.Fatalf("alice's draft followed to bob:\n%s", screen)
	}
	s.typeText("for bob")
	s.key(tcell.KeyCtrlP) // back to alice
	s.waitText("No messages yet with alice", "> early words")
	s.key(tcell.KeyEnter)
	s.key(tcell.KeyCtrlN) // bob again
	s.waitText("No messages yet with bob", "> for bob")
	s.key(tcell.KeyEnter)
	waitUntil(t, "both sent", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) { ok = len(f.sent) == 2 })
		return ok
	})
	s.fake.snapshot(func(f *fakeClient) {
		if f.sent[0] != (sentText{"alice", "early words"}) || f.sent[1] != (sentText{"bob", "for bob"}) {
			t.Errorf("sent %+v", f.sent)
		}
	})
}

// TestBrowserCursorTypedPathSocketsAndLastFolder: the cursor is visible,
// a socket is listed but cannot be sent, a typed path opens a folder or
// sends a file, and the next Ctrl-O opens in the folder of the last file.
func TestBrowserCursorTypedPathSocketsAndLastFolder(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("/tmp", "ux-browse-") // short: a socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "a.txt"), filepath.Join(sub, "deep file.txt")} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fake := newFake(t, "carol", peer(t, "bob", true))
	s := start(t, fake, tui.Options{BrowseDir: dir}, 140, 40)
	s.waitText("● bob")
	s.key(tcell.KeyCtrlN)
	s.waitText("No messages yet with bob")
	s.key(tcell.KeyCtrlO)
	s.waitText("Send a file to bob", "sub/", "a.txt", "sock (socket, not sendable)")

	// The cursor is drawn reversed: first on the root (the browser has the
	// keys), then, one line down, on the folder at the top.
	reversed := func(label string) func() bool {
		return func() bool {
			text, err := s.ui.ScreenText()
			if err != nil {
				return false
			}
			for y, line := range strings.Split(text, "\n") {
				if x := strings.Index(line, label); x >= 0 {
					_, _, style, _ := s.screen.GetContent(len([]rune(line[:x])), y)
					_, _, attrs := style.Decompose()
					return attrs&tcell.AttrReverse != 0
				}
			}
			return false
		}
	}
	waitUntil(t, "the cursor on the browser's root", reversed(dir))
	// In loaded -race runs of the whole package the first Down was seen to
	// leave the cursor on the root (why is not understood yet): press again
	// while it is still there, at most three times.
	for range 3 {
		s.key(tcell.KeyDown) // sub/
		moved := time.Now().Add(3 * time.Second)
		for time.Now().Before(moved) && reversed(dir)() && !reversed("sub/")() {
			time.Sleep(20 * time.Millisecond)
		}
		if !reversed(dir)() {
			break
		}
	}
	waitUntil(t, "a visible cursor", reversed("sub/"))

	// A typed path: Tab, the folder's path, Enter opens it; then a file in it.
	s.key(tcell.KeyTab)
	s.waitText("Path: " + dir + "/")
	s.typeText("sub")
	s.key(tcell.KeyEnter)
	s.waitText(sub, "deep file.txt")
	s.key(tcell.KeyTab)
	s.typeText("deep file.txt") // letters, including s, go to the path
	s.key(tcell.KeyEnter)
	waitUntil(t, "the typed file offered", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) {
			ok = len(f.files) == 1 && f.files[0] == sentFile{"bob", filepath.Join(sub, "deep file.txt")}
		})
		return ok
	})
	// The next Ctrl-O opens where the last file was.
	s.key(tcell.KeyCtrlO)
	s.waitText("Send a file to bob", "deep file.txt")
	s.key(tcell.KeyEscape)

	// /send takes quoted and backslash-escaped paths, as drag and drop writes them.
	for i, typed := range []string{"'" + sub + "/deep file.txt'", strings.ReplaceAll(sub+"/deep file.txt", " ", `\ `)} {
		s.typeText("/send " + typed)
		s.key(tcell.KeyEnter)
		waitUntil(t, "sent by "+typed, func() (ok bool) {
			s.fake.snapshot(func(f *fakeClient) {
				ok = len(f.files) == 2+i && f.files[1+i] == sentFile{"bob", filepath.Join(sub, "deep file.txt")}
			})
			return ok
		})
	}
}

// TestMarkerLastSeenNewlineAndHelpScroll: the "new messages" line sits
// before the unread ones; an offline peer says when it was last seen;
// Alt-Enter puts a line break in a message; the help screen scrolls.
func TestMarkerLastSeenNewlineAndHelpScroll(t *testing.T) {
	t.Parallel()
	seen := time.Now().UTC().Truncate(time.Minute) // today, even a minute after midnight
	bob := peer(t, "bob", false)
	bob.Peer.LastSeen = seen
	bob.Unread = 2
	fake := newFake(t, "carol", bob)
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for i, body := range []string{"old news", "new one", "new two"} {
		m, err := domain.NewIncomingMessage(domain.NewMessageID(), domain.MustUsername("bob"), domain.MustUsername("carol"), at.Add(time.Duration(i)*time.Minute), body)
		if err != nil {
			t.Fatal(err)
		}
		fake.history["bob"] = append(fake.history["bob"], m)
	}
	s := start(t, fake, tui.Options{}, 100, 22)
	s.waitText("○ bob (2)")
	s.key(tcell.KeyCtrlN)
	screen := s.waitText("bob offline, last seen "+seen.Format("15:04"), "2 new messages")
	lines := strings.Split(screen, "\n")
	order := []string{"old news", "2 new messages", "new one", "new two"}
	next := 0
	for _, l := range lines {
		if next < len(order) && strings.Contains(l, order[next]) {
			next++
		}
	}
	if next != len(order) {
		t.Fatalf("want %q in that order:\n%s", order, screen)
	}

	s.typeText("line one")
	s.screen.InjectKey(tcell.KeyEnter, 0, tcell.ModAlt)
	s.typeText("line two")
	s.waitText("> line one⏎line two")
	s.key(tcell.KeyEnter)
	waitUntil(t, "the two-line message sent", func() (ok bool) {
		s.fake.snapshot(func(f *fakeClient) { ok = len(f.sent) == 1 && f.sent[0] == sentText{"bob", "line one\nline two"} })
		return ok
	})

	s.key(tcell.KeyF1)
	s.waitText("Help — Esc closes")
	if strings.Contains(s.waitText("Help"), "Marks:") {
		t.Fatal("the screen is too tall for this test")
	}
	s.waitFor("the help scrolled to its end", func(screen string) bool {
		if strings.Contains(screen, "Marks:") {
			return true
		}
		s.key(tcell.KeyPgDn)
		return false
	})
}

func TestPeersShowHowEachPeerIsReached(t *testing.T) {
	t.Parallel()
	bob := peer(t, "bob", true)
	bob.Path = domain.Path{Kind: domain.PathRelayed, Transport: domain.TransportQUIC, RTT: 42 * time.Millisecond}
	dave := peer(t, "dave", true)
	dave.Path = domain.Path{Kind: domain.PathLAN, Transport: domain.TransportTCP}
	s := start(t, newFake(t, "carol", bob, dave), tui.Options{}, 100, 30)
	s.waitText("● bob relayed·quic", "● dave lan")
	s.key(tcell.KeyCtrlN)
	s.waitText("online · relayed quic 42ms")
}

func TestAQueuedMessageSaysItIsTryingToReachThePeer(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	s := start(t, fake, tui.Options{}, 120, 30)
	s.waitText("● bob")
	s.key(tcell.KeyCtrlN)
	s.waitText("No messages yet with bob")
	s.typeText("anyone home?")
	s.key(tcell.KeyEnter)
	s.waitText("anyone home?")
	bob := domain.MustUsername("bob")
	fake.events <- ports.ReachabilityEvent{Peer: bob, Reason: "no path: punching timed out"}
	s.waitText("trying to reach bob…", "punching timed out")
	fake.events <- ports.ReachabilityEvent{Peer: bob, Reachable: true, Path: domain.Path{Kind: domain.PathRelayed, Transport: domain.TransportQUIC}}
	s.waitFor("the notice gone", func(screen string) bool { return !strings.Contains(screen, "trying to reach bob") })
}

func TestReachabilityScreenShowsNATCandidatesAndPaths(t *testing.T) {
	t.Parallel()
	bob := peer(t, "bob", true)
	bob.Path = domain.Path{Kind: domain.PathDirect, Transport: domain.TransportQUIC, Remote: "203.0.113.5:40122", RTT: 12 * time.Millisecond}
	bob.Peer.Endpoints.NAT = domain.NATEndpointDependent
	s := start(t, newFake(t, "carol", bob, peer(t, "dave", true)), tui.Options{}, 120, 40)
	s.waitText("● bob")
	s.key(tcell.KeyF2)
	s.waitText("endpoint-independent mapping", "srflx 203.0.113.9:41000",
		"bob: direct quic 12ms 203.0.113.5:40122 (their NAT: endpoint-dependent)", "dave: no link now", "none yet")
	s.key(tcell.KeyEscape)
	s.waitFor("the screen closed", func(screen string) bool { return !strings.Contains(screen, "Reachability") })
	s.typeText("/doctor")
	s.key(tcell.KeyEnter)
	s.waitText("Reachability")
}
