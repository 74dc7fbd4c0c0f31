package tui

import (
	"context"
	"net/url"
	"strings"

	"github.com/chatx/chatx/domain"
)

// Command is one `/` command of the input line. Like the key bindings, the
// table drives both the commands and their help.
type Command struct {
	Name        string // without the slash
	Args        string // how the arguments are written for people
	Description string
	Run         func(u *UI, arg string)
}

// DefaultCommands is the table of `/` commands of the input line.
func DefaultCommands() []Command {
	return append([]Command{
		{Name: "send", Args: "PATH", Description: "offer a file or folder to the current peer (Tab completes the path)",
			Run: func(u *UI, arg string) { u.sendFile(expandHome(unquotePath(arg))) }},
		{Name: "accept", Args: "[ID]", Description: "accept an incoming offer (the newest without ID)",
			Run: func(u *UI, arg string) { u.answerByID(arg, true) }},
		{Name: "decline", Args: "[ID]", Description: "decline an incoming offer (the newest without ID)",
			Run: func(u *UI, arg string) { u.answerByID(arg, false) }},
		{Name: "cancel", Args: "[ID]", Description: "cancel a transfer (the newest running without ID)",
			Run: (*UI).cancelByID},
		{Name: "verify", Args: "[NAME]", Description: "show the safety number to verify a contact (the current peer without NAME)",
			Run: (*UI).verifyCommand},
		{Name: "search", Args: "TEXT", Description: "find messages containing every word of TEXT",
			Run: (*UI).search},
		{Name: "doctor", Description: "how this machine and each peer are reached: NAT, candidates, paths, attempts (F2)",
			Run: func(u *UI, _ string) { u.showReach() }},
		{Name: "help", Description: "show every key and command",
			Run: func(u *UI, _ string) { u.showHelp() }},
		{Name: "quit", Description: "leave ChatX",
			Run: func(u *UI, _ string) { u.requestQuit() }},
	}, append(contactCommands(), groupCommands()...)...)
}

// runCommand runs a "/name arg" line.
func (u *UI) runCommand(line string) {
	name, arg, _ := strings.Cut(strings.TrimPrefix(line, "/"), " ")
	arg = strings.TrimSpace(arg)
	for _, c := range u.commands {
		if c.Name == name {
			c.Run(u, arg)
			return
		}
	}
	u.showNotice("[red]✗[-] unknown command /" + escapeLine(name) + " — /help lists them")
}

func (u *UI) verifyCommand(arg string) {
	if arg == "" {
		u.showSafetyCurrent()
		return
	}
	name, err := domain.ParseUsername(arg)
	if err != nil {
		u.showError("verify", err)
		return
	}
	u.showSafety(name)
}

func (u *UI) search(query string) {
	if strings.TrimSpace(query) == "" {
		u.showNotice("[red]✗[-] usage: /search TEXT")
		return
	}
	u.spawn("search", func(ctx context.Context) (func(), error) {
		res, err := u.client.Search(ctx, query, searchLimit)
		if err != nil {
			return nil, err
		}
		return func() {
			u.conv.showSearch(u, query, res)
			u.showNotice(plural(len(res), "message") + " found — Esc goes back to the conversation")
		}, nil
	})
}

// unquotePath reads a path as a shell or a drag and drop writes it: in
// single or double quotes ('my file.txt', "my file.txt"), or with
// backslash-escaped characters (my\ file.txt); a file:// URL gives its path.
// Anything else is taken as it is.
func unquotePath(s string) string {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "file://"); ok {
		if u, err := url.PathUnescape(rest); err == nil {
			return u
		}
	}
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		inner := s[1 : len(s)-1]
		if s[0] == '"' {
			inner = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(inner)
		}
		return inner
	}
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
