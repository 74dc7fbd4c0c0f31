package tui

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
)

// maxBrowserEntries bounds the entries read from one folder.
const maxBrowserEntries = 2000

// browser is the file browser: a tree of folders and files; Enter opens a
// folder or sends a file, s sends the selected file or folder.
type browser struct {
	tree   *tview.TreeView
	path   *tview.InputField // a typed path: a folder to open or a file to send
	layout *tview.Flex
	root   string
}

// selectedStyle makes the cursor visible in terminal colours (tview's
// default swaps two default colours, which shows nothing).
var selectedStyle = tcell.StyleDefault.Reverse(true)

// entry is what a tree node refers to.
type entry struct {
	path   string
	dir    bool
	loaded bool
}

func newBrowser(u *UI) *browser {
	b := &browser{tree: tview.NewTreeView(), path: tview.NewInputField()}
	b.tree.SetBorder(true).SetTitleAlign(tview.AlignLeft)
	b.path.SetLabel("Path: ").SetFieldStyle(tcell.StyleDefault.Underline(true)).
		SetPlaceholder("Tab, then type a path and Enter").SetPlaceholderStyle(tcell.StyleDefault.Dim(true))
	b.path.SetDoneFunc(func(k tcell.Key) {
		if k == tcell.KeyEnter {
			u.browserGo(b.path.GetText())
		}
	})
	b.layout = tview.NewFlex().SetDirection(tview.FlexRow).AddItem(b.path, 1, 0, false).AddItem(b.tree, 0, 1, true)
	b.tree.SetSelectedFunc(func(n *tview.TreeNode) {
		e, ok := n.GetReference().(*entry)
		if !ok {
			return
		}
		if !e.dir {
			u.browserSend(e.path)
			return
		}
		if !e.loaded {
			u.browserLoad(n, e)
			n.SetExpanded(true)
			return
		}
		n.SetExpanded(!n.IsExpanded())
	})
	return b
}

// setRoot shows dir at the top of the tree.
func (u *UI) browserSetRoot(dir string) {
	b := u.browser
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	b.root = dir
	e := &entry{path: dir, dir: true}
	root := tview.NewTreeNode(escapeLine(dir)).SetReference(e).SetSelectable(true).SetSelectedTextStyle(selectedStyle)
	u.browserLoad(root, e)
	b.tree.SetRoot(root).SetCurrentNode(root)
	title := " Send a file to " + escapeLine(u.current().String()) + " — Enter opens/sends, s sends a folder, Backspace goes up, Tab types a path, Esc closes "
	b.tree.SetTitle(title)
	b.path.SetText("")
}

// browserLoad reads the children of a folder node.
func (u *UI) browserLoad(n *tview.TreeNode, e *entry) {
	e.loaded = true
	n.ClearChildren()
	f, err := os.Open(e.path)
	if err != nil {
		u.showError("open folder", err)
		return
	}
	entries, err := f.ReadDir(maxBrowserEntries)
	f.Close()
	if err != nil && len(entries) == 0 {
		u.showError("read folder", err)
		return
	}
	slices.SortFunc(entries, func(a, b os.DirEntry) int {
		if a.IsDir() != b.IsDir() {
			if a.IsDir() {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name(), b.Name())
	})
	for _, de := range entries {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		path := filepath.Join(e.path, de.Name())
		label := escapeLine(de.Name())
		kind, ok := sendable(path)
		if !ok {
			// A socket, a device, a pipe: listed so the folder reads true,
			// never selectable, so Enter cannot send it.
			n.AddChild(tview.NewTreeNode("[::d]" + label + " (" + kind + ", not sendable)[::-]").SetSelectable(false))
			continue
		}
		child := &entry{path: path, dir: kind == "folder"}
		node := tview.NewTreeNode(label).SetReference(child).SetSelectable(true).SetSelectedTextStyle(selectedStyle)
		if child.dir {
			node.SetText(label + string(filepath.Separator)).SetColor(tcell.ColorTeal).SetSelectedTextStyle(selectedStyle)
			node.SetExpanded(false)
		}
		n.AddChild(node)
	}
	if len(entries) == maxBrowserEntries {
		n.AddChild(tview.NewTreeNode("[::d]… more entries not shown[::-]").SetSelectable(false))
	}
}

func (u *UI) showBrowser() {
	if u.current().IsZero() {
		u.showNotice("[red]✗[-] pick a peer first, then choose a file to send")
		return
	}
	if u.browser.root == "" {
		u.browserSetRoot(u.opts.BrowseDir)
	} else {
		u.browserSetRoot(u.browser.root) // the last folder used
	}
	u.showOverlay(pageBrowser, centered(u.browser.layout, 90, 30), u.browser.tree)
}

// sendable says what is at path (following a symbolic link) and whether it
// can be offered: a regular file or a folder.
func sendable(path string) (kind string, ok bool) {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return "unreadable", false
	case fi.IsDir():
		return "folder", true
	case fi.Mode().IsRegular():
		return "file", true
	case fi.Mode()&os.ModeSocket != 0:
		return "socket", false
	case fi.Mode()&os.ModeNamedPipe != 0:
		return "pipe", false
	case fi.Mode()&(os.ModeDevice|os.ModeCharDevice) != 0:
		return "device", false
	}
	return "special file", false
}

// browserGo takes a typed path: a folder opens in the browser, a file is
// sent.
func (u *UI) browserGo(typed string) {
	path := expandHome(unquotePath(typed))
	if path == "" {
		u.app.SetFocus(u.browser.tree)
		return
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(u.browser.root, path)
	}
	switch kind, ok := sendable(path); {
	case !ok:
		u.showNotice("[red]✗[-] " + escapeLine(path) + " is a " + kind + ": only files and folders can be sent")
	case kind == "folder":
		u.browserSetRoot(path)
		u.app.SetFocus(u.browser.tree)
	default:
		u.browserSend(path)
	}
}

// browserTypePath moves to the path line, or back to the tree.
func (u *UI) browserTypePath() {
	if u.app.GetFocus() == u.browser.path {
		u.app.SetFocus(u.browser.tree)
		return
	}
	u.browser.path.SetText(u.browser.root + string(filepath.Separator))
	u.app.SetFocus(u.browser.path)
}

func (u *UI) browserSend(path string) {
	if kind, ok := sendable(path); !ok {
		u.showNotice("[red]✗[-] " + escapeLine(path) + " is a " + kind + ": only files and folders can be sent")
		return
	}
	u.browser.root = filepath.Dir(path) // the next Ctrl-O opens here
	u.closeOverlay()
	u.sendFile(path)
}

func (u *UI) browserSendSelected() {
	n := u.browser.tree.GetCurrentNode()
	if n == nil {
		return
	}
	if e, ok := n.GetReference().(*entry); ok {
		u.browserSend(e.path)
	}
}

func (u *UI) browserUp() {
	if u.app.GetFocus() == u.browser.path {
		u.browser.path.InputHandler()(tcell.NewEventKey(tcell.KeyBackspace, 0, tcell.ModNone), nil)
		return
	}
	parent := filepath.Dir(u.browser.root)
	if parent == u.browser.root {
		return
	}
	u.browserSetRoot(parent)
}
