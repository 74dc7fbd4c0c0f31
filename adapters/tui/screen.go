package tui

import (
	"errors"
	"strings"

	"github.com/gdamore/tcell/v2"
)

// ScreenText renders what screen holds as text, one line per row, trailing
// spaces trimmed. Call it on the goroutine that draws the screen (or use
// (*UI).ScreenText).
func ScreenText(screen tcell.Screen) string {
	w, h := screen.Size()
	var b strings.Builder
	for y := 0; y < h; y++ {
		var line strings.Builder
		for x := 0; x < w; {
			primary, combining, _, width := screen.GetContent(x, y)
			if primary == 0 {
				primary = ' '
			}
			line.WriteRune(primary)
			for _, r := range combining {
				line.WriteRune(r)
			}
			x += max(width, 1)
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// ErrNotRunning: the UI is not running (Run has returned or is stopping).
var ErrNotRunning = errors.New("tui: not running")

// ScreenText draws the UI and returns the screen as text (see ScreenText).
// It waits for the UI goroutine, so it must not be called from it.
func (u *UI) ScreenText() (string, error) {
	res := make(chan string, 1)
	u.post(func() {
		u.app.ForceDraw()
		res <- ScreenText(u.screen)
	})
	select {
	case s := <-res:
		return s, nil
	case <-u.closing:
		return "", ErrNotRunning
	}
}
