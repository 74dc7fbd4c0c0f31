package tui

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
)

const (
	maxInputHistory = 200
	maxCompletions  = 1000 // directory entries read for one path completion
	shownCandidates = 8
)

// inputPane is the input line: text for the current peer or a /command, with
// its own history.
type inputPane struct {
	field   *tview.InputField
	history []string
	pos     int               // index into history while browsing it; len(history) otherwise
	draft   string            // what was typed before browsing the history
	drafts  map[string]string // unsent text of the other conversations, by peer key
}

// maxDrafts bounds the conversations whose unsent text is kept.
const maxDrafts = 1000

// switchDraft keeps the unsent text of the conversation being left (from)
// and puts back that of the one being opened (to). Text typed before any
// conversation was open goes to the first one opened.
func (in *inputPane) switchDraft(from, to domain.Username) {
	text := in.field.GetText()
	if !from.IsZero() {
		if text != "" && (len(in.drafts) < maxDrafts || in.drafts[from.Key()] != "") {
			in.drafts[from.Key()] = text
		} else {
			delete(in.drafts, from.Key())
		}
		text = ""
	}
	if d, ok := in.drafts[to.Key()]; ok {
		text = d
		delete(in.drafts, to.Key())
	}
	in.field.SetText(text)
	in.pos, in.draft = len(in.history), ""
}

func newInputPane(u *UI) *inputPane {
	in := &inputPane{field: tview.NewInputField(), drafts: make(map[string]string)}
	in.field.SetLabel("> ").
		SetFieldStyle(tcell.StyleDefault).
		SetPlaceholder("type a message, or /help").
		SetPlaceholderStyle(tcell.StyleDefault.Dim(true))
	in.field.SetChangedFunc(func(text string) { u.typed(text) })
	return in
}

func (in *inputPane) remember(line string) {
	if n := len(in.history); n == 0 || in.history[n-1] != line {
		in.history = append(in.history, line)
		if len(in.history) > maxInputHistory {
			in.history = slices.Delete(in.history, 0, len(in.history)-maxInputHistory)
		}
	}
	in.pos, in.draft = len(in.history), ""
}

// historyMove shows an older (-1) or newer (1) line of the history.
func (in *inputPane) historyMove(dir int) {
	if in.pos == len(in.history) && dir < 0 {
		in.draft = in.field.GetText()
	}
	next := in.pos + dir
	if next < 0 || next > len(in.history) {
		return
	}
	in.pos = next
	if next == len(in.history) {
		in.field.SetText(in.draft)
		return
	}
	in.field.SetText(in.history[next])
}

// typed tells the current peer we are typing, at most every few seconds.
func (u *UI) typed(text string) {
	peer := u.current()
	if text == "" || strings.HasPrefix(text, "/") || peer.IsZero() || time.Since(u.lastTyping) < typingResend {
		return
	}
	u.lastTyping = time.Now()
	u.spawn("typing", func(ctx context.Context) (func(), error) {
		return nil, u.client.Typing(ctx, peer)
	})
}

// newlineMark stands for a line break in the one-line input field; sending
// turns it into "\n".
const newlineMark = "⏎"

// insertNewline is Alt-Enter: a line break in the message being typed.
func (u *UI) insertNewline() {
	f := u.input.field
	f.SetText(f.GetText() + newlineMark)
}

// submitInput sends the line or runs the command in it.
func (u *UI) submitInput() {
	line := u.input.field.GetText()
	if strings.TrimSpace(line) == "" {
		return
	}
	isCommand := strings.HasPrefix(line, "/") && !strings.HasPrefix(line, "//")
	if !isCommand && u.current().IsZero() && !u.groupOpen() {
		// Keep the text: it goes to the conversation picked next.
		u.showNotice("[red]✗[-] pick a peer first (Ctrl-N, or Ctrl-F and type a name); your text stays in the line")
		return
	}
	u.input.remember(line)
	u.input.field.SetText("")
	if isCommand {
		u.runCommand(line)
		return
	}
	line = strings.TrimPrefix(line, "/") // "//x" sends "/x"
	u.sendText(strings.ReplaceAll(line, newlineMark, "\n"))
}

// sendText queues text to the current peer.
func (u *UI) sendText(text string) {
	if u.groupOpen() {
		if err := domain.ValidateBody(text); err != nil {
			u.showError("send", err)
			return
		}
		u.sendGroupText(text)
		return
	}
	peer := u.current()
	if peer.IsZero() {
		u.showNotice("[red]✗[-] pick a peer first (Ctrl-N, or Ctrl-F and type a name)")
		return
	}
	if err := domain.ValidateBody(text); err != nil {
		u.showError("send", err)
		return
	}
	u.lastTyping = time.Time{}
	u.spawn("send to "+peer.String(), func(ctx context.Context) (func(), error) {
		m, err := u.client.Send(ctx, peer, text)
		if err != nil {
			return nil, err
		}
		return func() { u.onMessage(m) }, nil
	})
}

// complete is Tab on the input line.
func (u *UI) complete() {
	text := u.input.field.GetText()
	if !strings.HasPrefix(text, "/") {
		return
	}
	name, arg, hasArg := strings.Cut(text[1:], " ")
	if !hasArg {
		var names []string
		for _, c := range u.commands {
			if strings.HasPrefix(c.Name, name) {
				names = append(names, c.Name)
			}
		}
		u.applyCompletion("/", names, " ")
		return
	}
	switch name {
	case "send":
		u.completePath("/send ", arg)
	case "verify":
		var names []string
		for _, pv := range u.peers.all {
			if n := pv.Peer.Name().String(); strings.HasPrefix(n, arg) {
				names = append(names, n)
			}
		}
		u.applyCompletion("/verify ", names, "")
	case "accept", "decline", "cancel":
		var ids []string
		for _, t := range u.transfers.list {
			if id := t.ID().Short(); strings.HasPrefix(id, arg) && !t.State().Terminal() {
				ids = append(ids, id)
			}
		}
		u.applyCompletion("/"+name+" ", ids, "")
	}
}

// completePath completes the last element of a path from the file system.
func (u *UI) completePath(prefix, arg string) {
	dir, base := filepath.Split(arg)
	readDir := expandHome(dir)
	if readDir == "" {
		readDir = "."
	}
	f, err := os.Open(readDir)
	if err != nil {
		u.showError("complete", err)
		return
	}
	entries, err := f.ReadDir(maxCompletions)
	f.Close()
	if err != nil && len(entries) == 0 {
		u.showError("complete", err)
		return
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), base) || (strings.HasPrefix(e.Name(), ".") && !strings.HasPrefix(base, ".")) {
			continue
		}
		n := e.Name()
		if e.IsDir() {
			n += string(filepath.Separator)
		}
		names = append(names, n)
	}
	u.applyCompletion(prefix+dir, names, "")
}

// applyCompletion puts the completion into the input line: the only
// candidate (then suffix), or the longest common prefix and a list of the
// candidates in the notice line.
func (u *UI) applyCompletion(prefix string, candidates []string, suffix string) {
	switch len(candidates) {
	case 0:
		u.showNotice("[::d]no completion[::-]")
		return
	case 1:
		c := candidates[0]
		if strings.HasSuffix(c, string(filepath.Separator)) {
			suffix = ""
		}
		u.input.field.SetText(prefix + c + suffix)
		return
	}
	slices.Sort(candidates)
	common := candidates[0]
	for _, c := range candidates[1:] {
		for !strings.HasPrefix(c, common) {
			common = common[:len(common)-1]
		}
	}
	for !utf8.ValidString(common) {
		common = common[:len(common)-1]
	}
	u.input.field.SetText(prefix + common)
	shown := candidates[:min(len(candidates), shownCandidates)]
	var esc []string
	for _, c := range shown {
		esc = append(esc, escapeLine(c))
	}
	more := ""
	if len(candidates) > len(shown) {
		more = " …"
	}
	u.showNotice("[::d]" + strings.Join(esc, "  ") + more + "[::-]")
}

// expandHome turns a leading "~/" into the home folder.
func expandHome(path string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return path
}
