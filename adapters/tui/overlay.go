package tui

import (
	"github.com/rivo/tview"
)

// centered places p in the middle of the screen, at most width × height; the
// main screen stays visible around it.
func centered(p tview.Primitive, width, height int) tview.Primitive {
	return tview.NewFlex().
		AddItem(nil, 0, 1, false).
		AddItem(tview.NewFlex().SetDirection(tview.FlexRow).
			AddItem(nil, 0, 1, false).
			AddItem(p, height, 1, true).
			AddItem(nil, 0, 1, false), width, 1, true).
		AddItem(nil, 0, 1, false)
}

// dialogView is the text view of a dialog.
func dialogView(title string) *tview.TextView {
	v := tview.NewTextView().SetDynamicColors(true).SetWrap(true).SetWordWrap(true)
	v.SetBorder(true).SetTitle(title)
	return v
}
