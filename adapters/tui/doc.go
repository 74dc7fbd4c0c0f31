// Package tui is the terminal user interface of ChatX: a driving adapter that
// shows what a ports.Client knows (peers, conversations, transfers, the
// registry's state) with rivo/tview on a tcell.Screen, and turns key presses,
// mouse clicks and `/` commands into calls on that ports.Client.
//
// It must not reach the network, the stores or the keys by itself: every
// effect goes through ports.Client. Widgets are touched only on the tview
// goroutine; client events and the results of client calls reach them through
// one funnel goroutine that calls Application.QueueUpdateDraw. Every string
// that comes from outside the program (names, messages, file names, errors)
// passes through Escape before it reaches a widget, so tview tags, terminal
// escapes, control and bidi characters are shown as text and never obeyed.
package tui
