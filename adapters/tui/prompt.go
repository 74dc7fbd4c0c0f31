package tui

import (
	"errors"
	"strings"
	"sync"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
)

// ErrCancelled: the user left the name prompt with Esc or Ctrl-C.
var ErrCancelled = errors.New("tui: cancelled")

// maxNameInput bounds what the name prompt accepts as typed text.
const maxNameInput = 4 * domain.MaxUsernameLen

// NamePrompt is the first-run dialog that asks for the user's name, before
// a client exists. It owns its screen and finalises it when Run returns, so
// the main UI needs a fresh screen.
type NamePrompt struct {
	screen   tcell.Screen
	validate func(string) error
	app      *tview.Application
	field    *tview.InputField
	errView  *tview.TextView

	mu      sync.Mutex
	frame   string // the screen as text after the last draw
	running bool
	done    chan struct{}
	name    string
	err     error
}

// NewNamePrompt builds the prompt on screen; validate decides whether a name
// is acceptable (nil means domain.ParseUsername), and its error is shown under
// the field.
func NewNamePrompt(screen tcell.Screen, validate func(string) error) *NamePrompt {
	if validate == nil {
		validate = func(s string) error { _, err := domain.ParseUsername(s); return err }
	}
	useTerminalColours()
	p := &NamePrompt{screen: screen, validate: validate, app: tview.NewApplication(), done: make(chan struct{})}
	p.field = tview.NewInputField().SetLabel("Name: ").SetFieldWidth(domain.MaxUsernameLen + 2).
		SetFieldStyle(tcell.StyleDefault.Underline(true)).
		SetAcceptanceFunc(func(text string, _ rune) bool { return len(text) <= maxNameInput })
	p.errView = tview.NewTextView().SetDynamicColors(true).SetWrap(true)
	intro := tview.NewTextView().SetDynamicColors(true).SetWrap(true).SetText(
		"Enter your username.\n\nOthers find you by it. 3 to 32 letters a-z, digits, '_', '-' or '.'; " +
			"it starts with a letter or a digit.")
	hint := tview.NewTextView().SetDynamicColors(true).SetText("[::d]Enter to continue · Esc to leave[::-]")
	form := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(intro, 4, 0, false).
		AddItem(p.field, 1, 0, true).
		AddItem(p.errView, 3, 0, false).
		AddItem(hint, 1, 0, false)
	form.SetBorder(true).SetTitle(" Welcome to ChatX ")
	p.app.SetRoot(centered(form, 64, 11), true).SetFocus(p.field)
	p.app.SetAfterDrawFunc(func(screen tcell.Screen) {
		text := ScreenText(screen)
		p.mu.Lock()
		p.frame = text
		p.mu.Unlock()
	})
	p.app.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		switch ev.Key() {
		case tcell.KeyEscape, tcell.KeyCtrlC:
			p.finish("", ErrCancelled)
			return nil
		case tcell.KeyEnter:
			p.submit()
			return nil
		}
		return ev
	})
	return p
}

func (p *NamePrompt) submit() {
	raw := p.field.GetText()
	if err := p.validate(raw); err != nil {
		p.errView.SetText("[red]✗[-] " + Escape(err.Error()))
		return
	}
	p.finish(strings.TrimSpace(raw), nil)
}

// finish ends the prompt; on the UI goroutine.
func (p *NamePrompt) finish(name string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return
	}
	p.running = false
	p.name, p.err = name, err
	close(p.done)
	p.app.Stop()
}

// Run shows the prompt until a valid name is entered (returned as typed,
// trimmed) or the user cancels (ErrCancelled).
func (p *NamePrompt) Run() (string, error) {
	p.mu.Lock()
	if p.running || p.isDone() {
		p.mu.Unlock()
		return "", errors.New("tui: name prompt already ran")
	}
	p.running = true
	p.app.SetScreen(p.screen)
	p.mu.Unlock()
	if err := p.app.Run(); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isDone() { // the loop ended by itself (terminal gone)
		p.running = false
		close(p.done)
		return "", ErrCancelled
	}
	return p.name, p.err
}

func (p *NamePrompt) isDone() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ScreenText returns the prompt's screen as text, as of its last draw.
func (p *NamePrompt) ScreenText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frame
}

// AskName runs a NamePrompt on screen.
func AskName(screen tcell.Screen, validate func(string) error) (string, error) {
	return NewNamePrompt(screen, validate).Run()
}

// AskNameAgain runs a NamePrompt that first shows why the last name did not
// do (for instance: it is taken); an empty reason is AskName.
func AskNameAgain(screen tcell.Screen, validate func(string) error, reason string) (string, error) {
	return NewNamePrompt(screen, validate).WithReason(reason).Run()
}

// WithReason shows reason under the field until the user submits; call it
// before Run.
func (p *NamePrompt) WithReason(reason string) *NamePrompt {
	if reason != "" {
		p.errView.SetText("[red]✗[-] " + Escape(reason))
	}
	return p
}
