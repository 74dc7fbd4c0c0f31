package tui

import (
	"fmt"
	"strings"

	"github.com/gdamore/tcell/v2"
)

// Scope says where a key binding applies: everywhere on the main screen, in
// one focused pane, or in one overlay (which then takes every key).
type Scope string

// The scopes, in the order the help screen lists them.
const (
	ScopeGlobal    Scope = "everywhere"
	ScopeInput     Scope = "input line"
	ScopePeers     Scope = "peers pane"
	ScopeTransfers Scope = "transfers pane"
	ScopeOffer     Scope = "incoming offer"
	ScopeKeyChange Scope = "key-change warning"
	ScopeCert      Scope = "registry certificate warning"
	ScopeSafety    Scope = "safety number"
	ScopeBrowser   Scope = "file browser"
	ScopeHelp      Scope = "help screen"
	ScopeReach     Scope = "reachability screen"
	// ScopeRequests: contacts.go
)

var scopeOrder = []Scope{ScopeGlobal, ScopeInput, ScopePeers, ScopeTransfers, ScopeOffer,
	ScopeKeyChange, ScopeCert, ScopeSafety, ScopeBrowser, ScopeHelp, ScopeReach, ScopeRequests}

// Binding is one key binding. The table of bindings is the single source of
// the key handling, the help bar and the help screen, so they cannot drift.
type Binding struct {
	Scope       Scope
	Key         tcell.Key // tcell.KeyRune for a printable key, then Rune says which
	Rune        rune
	Mod         tcell.ModMask // modifiers that must be held (0: any)
	Name        string        // how the key is written for people: "Ctrl-N", "a"
	Description string
	// Action runs on the UI goroutine. Nil means the focused widget handles
	// the key itself (moving in a list); the binding is listed for the help.
	Action func(u *UI)
	// Bar puts the binding in the one-line help bar.
	Bar bool
}

func (b Binding) matches(ev *tcell.EventKey) bool {
	if ev.Key() != b.Key || ev.Modifiers()&b.Mod != b.Mod {
		return false
	}
	return b.Key != tcell.KeyRune || ev.Rune() == b.Rune
}

func key(scope Scope, k tcell.Key, name, desc string, action func(*UI)) Binding {
	return Binding{Scope: scope, Key: k, Name: name, Description: desc, Action: action}
}

func char(scope Scope, r rune, desc string, action func(*UI)) Binding {
	return Binding{Scope: scope, Key: tcell.KeyRune, Rune: r, Name: string(r), Description: desc, Action: action}
}

func onBar(b Binding) Binding { b.Bar = true; return b }

// DefaultBindings is the key-binding table of the terminal UI.
func DefaultBindings() []Binding {
	return append([]Binding{
		onBar(key(ScopeGlobal, tcell.KeyF1, "F1", "help: every key and command", (*UI).showHelp)),
		onBar(key(ScopeGlobal, tcell.KeyCtrlN, "Ctrl-N", "next peer", func(u *UI) { u.movePeer(1) })),
		key(ScopeGlobal, tcell.KeyCtrlP, "Ctrl-P", "previous peer", func(u *UI) { u.movePeer(-1) }),
		onBar(key(ScopeGlobal, tcell.KeyCtrlG, "Ctrl-G", "next unread: jump to the next peer with unread messages", (*UI).jumpUnread)),
		onBar(key(ScopeGlobal, tcell.KeyCtrlF, "Ctrl-F", "find a peer: focus the peers pane and type to filter", (*UI).focusPeers)),
		onBar(key(ScopeGlobal, tcell.KeyCtrlO, "Ctrl-O", "send a file or folder: open the file browser", (*UI).showBrowser)),
		onBar(key(ScopeGlobal, tcell.KeyCtrlT, "Ctrl-T", "transfers: focus the transfers pane", (*UI).focusTransfers)),
		onBar(key(ScopeGlobal, tcell.KeyCtrlS, "Ctrl-S", "safety number: verify the current peer", (*UI).showSafetyCurrent)),
		key(ScopeGlobal, tcell.KeyF2, "F2", "reachability: the NAT, our candidates, how each peer is reached (as chatx doctor)", (*UI).showReach),
		key(ScopeGlobal, tcell.KeyPgUp, "PgUp", "scroll the conversation up", func(u *UI) { u.conv.scroll(-1) }),
		key(ScopeGlobal, tcell.KeyPgDn, "PgDn", "scroll the conversation down", func(u *UI) { u.conv.scroll(1) }),
		key(ScopeGlobal, tcell.KeyEscape, "Esc", "back to the input line (and out of search results)", (*UI).focusInput),
		onBar(key(ScopeGlobal, tcell.KeyCtrlQ, "Ctrl-Q", "quit", (*UI).requestQuit)),
		key(ScopeGlobal, tcell.KeyCtrlC, "Ctrl-C", "quit", (*UI).requestQuit),

		// Before Enter: the first binding that matches wins.
		{Scope: ScopeInput, Key: tcell.KeyEnter, Mod: tcell.ModAlt, Name: "Alt-Enter", Description: "a new line in the message (shown as " + newlineMark + ")", Action: (*UI).insertNewline},
		key(ScopeInput, tcell.KeyEnter, "Enter", "send the line to the current peer, or run a /command", (*UI).submitInput),
		key(ScopeInput, tcell.KeyUp, "Up", "older line from the input history", func(u *UI) { u.input.historyMove(-1) }),
		key(ScopeInput, tcell.KeyDown, "Down", "newer line from the input history", func(u *UI) { u.input.historyMove(1) }),
		key(ScopeInput, tcell.KeyTab, "Tab", "complete a /command, a path after /send, a name after /verify", (*UI).complete),

		key(ScopePeers, tcell.KeyUp, "Up", "previous peer", func(u *UI) { u.movePeer(-1) }),
		key(ScopePeers, tcell.KeyDown, "Down", "next peer", func(u *UI) { u.movePeer(1) }),
		key(ScopePeers, tcell.KeyEnter, "Enter", "open the selected conversation and go to the input line", (*UI).openSelectedPeer),
		key(ScopePeers, tcell.KeyBackspace, "Backspace", "remove the last letter of the filter", func(u *UI) { u.peers.editFilter(u, -1, 0) }),
		{Scope: ScopePeers, Key: tcell.KeyRune, Name: "letters", Description: "filter the peers as you type"},
		key(ScopePeers, tcell.KeyEscape, "Esc", "clear the filter and go back to the input line", (*UI).clearFilter),

		key(ScopeTransfers, tcell.KeyUp, "Up", "previous transfer", func(u *UI) { u.transfers.move(-1) }),
		key(ScopeTransfers, tcell.KeyDown, "Down", "next transfer", func(u *UI) { u.transfers.move(1) }),
		char(ScopeTransfers, 'a', "accept the selected offer", func(u *UI) { u.answerSelected(true) }),
		char(ScopeTransfers, 'd', "decline the selected offer", func(u *UI) { u.answerSelected(false) }),
		char(ScopeTransfers, 'c', "cancel the selected transfer", (*UI).cancelSelected),
		key(ScopeTransfers, tcell.KeyEnter, "Enter", "show where the selected file was saved (or, for a sent one, where it was read from)", (*UI).showSelectedPath),

		char(ScopeOffer, 'a', "accept the offered file", func(u *UI) { u.answerOffer(true) }),
		char(ScopeOffer, 'd', "decline the offered file", func(u *UI) { u.answerOffer(false) }),
		key(ScopeOffer, tcell.KeyEscape, "Esc", "decide later (the offer stays in the transfers pane)", (*UI).closeOffer),

		char(ScopeKeyChange, 'a', "accept the new key (only after comparing the safety number)", (*UI).acceptKeyChange),
		char(ScopeKeyChange, 'k', "keep the peer blocked", (*UI).keepBlocked),
		key(ScopeKeyChange, tcell.KeyEscape, "Esc", "keep the peer blocked", (*UI).keepBlocked),

		key(ScopeCert, tcell.KeyEscape, "Esc", "close the warning (the client stays offline from that registry)", (*UI).closeOverlay),

		char(ScopeSafety, 'v', "mark the contact verified", func(u *UI) { u.setVerified(true) }),
		char(ScopeSafety, 'u', "mark the contact not verified", func(u *UI) { u.setVerified(false) }),
		char(ScopeSafety, 'a', "accept the new key the contact presented (when one is pending)", (*UI).safetyAcceptKey),
		key(ScopeSafety, tcell.KeyEscape, "Esc", "close", (*UI).closeOverlay),

		key(ScopeBrowser, tcell.KeyUp, "Up/Down", "move", nil),
		key(ScopeBrowser, tcell.KeyEnter, "Enter", "open or close a folder; send a file", nil),
		char(ScopeBrowser, 's', "send the selected file or folder", (*UI).browserSendSelected),
		key(ScopeBrowser, tcell.KeyBackspace, "Backspace", "go up to the parent folder", (*UI).browserUp),
		key(ScopeBrowser, tcell.KeyTab, "Tab", "type a path (a folder opens, a file is sent); Tab again goes back to the list", (*UI).browserTypePath),
		key(ScopeBrowser, tcell.KeyEscape, "Esc", "close", (*UI).closeOverlay),

		key(ScopeHelp, tcell.KeyUp, "Up/Down", "scroll", nil),
		key(ScopeHelp, tcell.KeyPgDn, "PgUp/PgDn", "scroll a page (Home, End: the top, the end)", nil),
		key(ScopeHelp, tcell.KeyEscape, "Esc", "close", (*UI).closeOverlay),
		key(ScopeHelp, tcell.KeyF1, "F1", "close", (*UI).closeOverlay),
		key(ScopeReach, tcell.KeyEscape, "Esc", "close", (*UI).closeOverlay),
		key(ScopeReach, tcell.KeyF2, "F2", "close", (*UI).closeOverlay),
		char(ScopeReach, 'r', "refresh", (*UI).showReach),
	}, contactBindings()...)
}

// dispatch finds the binding for a key in the scopes that are active and runs
// it. It reports whether the key was consumed.
func (u *UI) dispatch(ev *tcell.EventKey) (consumed bool) {
	scopes := u.activeScopes()
	typing := u.app.GetFocus() == u.browser.path // letters are the path's
	for _, s := range scopes {
		for _, b := range u.bindings {
			if b.Scope != s || !b.matches(ev) || (typing && b.Key == tcell.KeyRune) {
				continue
			}
			if b.Action == nil {
				return false
			}
			b.Action(u)
			return true
		}
	}
	return false
}

// helpBar is the one-line summary of the bindings marked Bar.
func helpBar(bindings []Binding) string {
	var parts []string
	for _, b := range bindings {
		if b.Bar {
			parts = append(parts, fmt.Sprintf("[::b]%s[::-] %s", b.Name, shortDescription(b.Description)))
		}
	}
	return strings.Join(parts, "  ")
}

// shortDescription is the part of a description before the first colon.
func shortDescription(d string) string {
	if i := strings.IndexByte(d, ':'); i > 0 {
		return d[:i]
	}
	return d
}
