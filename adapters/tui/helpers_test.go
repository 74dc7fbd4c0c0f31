package tui_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/chatx/chatx/adapters/tui"
)

const waitTimeout = 30 * time.Second

// session is a UI running on a simulation screen.
type session struct {
	t      *testing.T
	ui     *tui.UI
	screen tcell.SimulationScreen
	fake   *fakeClient
}

func start(t *testing.T, fake *fakeClient, opts tui.Options, w, h int) *session {
	t.Helper()
	return startOn(t, tcell.NewSimulationScreen("UTF-8"), fake, opts, w, h)
}

// beepScreen counts the terminal bells.
type beepScreen struct {
	tcell.SimulationScreen
	beeps atomic.Int32
}

func (b *beepScreen) Beep() error { b.beeps.Add(1); return nil }

func startOn(t *testing.T, screen tcell.SimulationScreen, fake *fakeClient, opts tui.Options, w, h int) *session {
	t.Helper()
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	ui, cleanup, err := tui.New(fake, screen, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	screen.SetSize(w, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ui.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("Run did not return after cancel")
		}
	})
	return &session{t: t, ui: ui, screen: screen, fake: fake}
}

// waitFor polls the screen until cond holds and returns the screen text.
func (s *session) waitFor(what string, cond func(screen string) bool) string {
	s.t.Helper()
	return waitScreen(s.t, what, cond, s.ui.ScreenText)
}

// waitText waits until the screen contains every one of texts.
func (s *session) waitText(texts ...string) string {
	s.t.Helper()
	return s.waitFor(strings.Join(texts, " & "), containsAll(texts...))
}

func containsAll(texts ...string) func(string) bool {
	return func(screen string) bool {
		for _, x := range texts {
			if !strings.Contains(screen, x) {
				return false
			}
		}
		return true
	}
}

func waitScreen(t *testing.T, what string, cond func(string) bool, read func() (string, error)) string {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	last := ""
	for {
		text, err := read()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		last = text
		if cond(text) {
			return text
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; screen:\n%s", what, last)
		}
	}
}

// waitUntil waits for a condition on the fake client's records.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (s *session) key(k tcell.Key) { s.screen.InjectKey(k, 0, tcell.ModNone) }

func (s *session) typeText(text string) {
	for _, r := range text {
		s.screen.InjectKey(tcell.KeyRune, r, tcell.ModNone)
	}
}
