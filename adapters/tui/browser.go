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
	tree *tview.TreeView
	root string
}

// entry is what a tree node refers to.
type entry struct {
	path   string
	dir    bool
	loaded bool
}

func newBrowser(u *UI) *browser {
	b := &browser{tree: tview.NewTreeView()}
	b.tree.SetBorder(true).SetTitleAlign(tview.AlignLeft)
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
	root := tview.NewTreeNode(escapeLine(dir)).SetReference(e).SetSelectable(true)
	u.browserLoad(root, e)
	b.tree.SetRoot(root).SetCurrentNode(root)
	title := " Send a file to " + escapeLine(u.current().String()) + " — Enter opens/sends, s sends a folder, Backspace goes up, Esc closes "
	b.tree.SetTitle(title)
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
		child := &entry{path: filepath.Join(e.path, de.Name()), dir: de.IsDir()}
		label := escapeLine(de.Name())
		node := tview.NewTreeNode(label).SetReference(child).SetSelectable(true)
		if child.dir {
			node.SetText(label + string(filepath.Separator)).SetColor(tcell.ColorTeal)
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
		u.browserSetRoot(u.browser.root)
	}
	u.showOverlay(pageBrowser, centered(u.browser.tree, 90, 30), u.browser.tree)
}

func (u *UI) browserSend(path string) {
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
	parent := filepath.Dir(u.browser.root)
	if parent == u.browser.root {
		return
	}
	u.browserSetRoot(parent)
}
