package tui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/google/wire"
	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// ProviderSet builds the terminal UI. The UI is a driving adapter: it binds no
// driven port, it consumes ports.Client.
var ProviderSet = wire.NewSet(New)

// Options tune the terminal UI. The zero value is usable.
type Options struct {
	// BrowseDir is the folder the file browser first opens on; empty means
	// the working folder (then the home folder). Later it opens on the
	// folder of the last file sent.
	BrowseDir string
	// HistoryLimit is how many messages a conversation loads; 0 means 500.
	HistoryLimit int
	// Location is the time zone of timestamps; nil means time.Local.
	Location *time.Location
	// DownloadDir is the folder received files land in, to say where a
	// file was saved; empty shows the name relative to it.
	DownloadDir string
	// NoBell keeps the terminal bell quiet; by default it rings for an
	// incoming message in a conversation that is not on screen.
	NoBell bool
	// AwayAfter turns the status "away" after this long without a key
	// (0: 10 minutes; negative: never); a key turns it back online.
	AwayAfter time.Duration
}

const (
	defaultHistoryLimit = 500
	maxHistoryLimit     = 10000
	searchLimit         = 100
	noticeLifetime      = 15 * time.Second
	typingLifetime      = 5 * time.Second
	typingResend        = 3 * time.Second
	tickInterval        = time.Second
	pathRefreshTicks    = 5 // ticks between two reloads of the peers (their paths)
	callTimeout         = 30 * time.Second
)

// The overlay pages.
const (
	pageMain      = "main"
	pageHelp      = "help"
	pageOffer     = "offer"
	pageKeyChange = "keychange"
	pageSafety    = "safety"
	pageBrowser   = "browser"
	pageCert      = "cert"
	pageReach     = "reach"
	// pageRequests: contacts.go
)

var overlayScopes = map[string]Scope{
	pageHelp: ScopeHelp, pageOffer: ScopeOffer, pageKeyChange: ScopeKeyChange,
	pageSafety: ScopeSafety, pageBrowser: ScopeBrowser, pageCert: ScopeCert, pageReach: ScopeReach,
	pageRequests: ScopeRequests,
}

// UI is the terminal user interface over one ports.Client. Build it with New,
// then Run it once.
type UI struct {
	client ports.Client
	screen tcell.Screen
	opts   Options
	log    *slog.Logger
	me     domain.Identity

	app       *tview.Application
	pages     *tview.Pages
	peers     *peersPane
	groups    *groupsView // groups.go
	conv      *conversationPane
	input     *inputPane
	transfers *transfersPane
	status    *statusBar
	notice    *tview.TextView
	bar       *tview.TextView
	help      *helpScreen
	reach     *tview.TextView // the reachability screen, made when first shown
	safety    *safetyScreen
	browser   *browser
	offer     *offerDialog
	keyChange *keyChangeDialog
	cert      certWarning
	requests  *requestsScreen // made when first shown (contacts.go)
	bindings  []Binding
	commands  []Command

	// State below is owned by the UI goroutine.
	overlay    string // front overlay page, "" when the main screen has the keys
	noticeAt   time.Time
	noticeErr  bool // the notice reports a failure
	lastTyping time.Time
	lastInput  time.Time // the last key, for the idle "away" (contacts.go)
	autoAway   bool      // the status is away because of idleness

	// Plumbing between goroutines.
	ctx      context.Context // the Run context; set before the UI loop starts
	updates  chan func()
	closing  chan struct{} // closed when Run starts shutting down
	appDone  chan struct{} // closed when the tview loop has returned
	quit     chan struct{}
	quitOnce sync.Once
	workers  sync.WaitGroup
	spawnMu  sync.Mutex
	stopping bool // guarded by spawnMu
	started  atomic.Bool
	runDone  chan struct{} // closed when Run has returned (or will never run)
	// events is the client's event stream, subscribed in New and ended by
	// unsubscribe when Run returns (or by the cleanup if Run never runs).
	events      <-chan ports.Event
	unsubscribe context.CancelFunc
}

var themeOnce sync.Once

// useTerminalColours makes tview draw text in the terminal's own foreground and
// background, so the UI reads on dark and light terminals; only accents (the
// online dot, delivery marks, warnings) have colours. tview.Styles is global.
func useTerminalColours() {
	themeOnce.Do(func() {
		tview.Styles = tview.Theme{
			PrimitiveBackgroundColor:    tcell.ColorDefault,
			ContrastBackgroundColor:     tcell.ColorDefault,
			MoreContrastBackgroundColor: tcell.ColorDefault,
			BorderColor:                 tcell.ColorDefault,
			TitleColor:                  tcell.ColorDefault,
			GraphicsColor:               tcell.ColorDefault,
			PrimaryTextColor:            tcell.ColorDefault,
			SecondaryTextColor:          tcell.ColorTeal,
			TertiaryTextColor:           tcell.ColorGreen,
			InverseTextColor:            tcell.ColorDefault,
			ContrastSecondaryTextColor:  tcell.ColorTeal,
		}
	})
}

// New builds the UI on screen (initialising it) for client and subscribes to
// the client's events, so build it before running the client to see its first
// registry status. The UI owns the screen from now on: Run finalises it when it returns. The cleanup function
// stops a running UI and waits for Run to return, or finalises the screen if
// Run was never called (so the terminal is restored either way); after it,
// Run returns an error.
func New(client ports.Client, screen tcell.Screen, opts Options, logger *slog.Logger) (*UI, func(), error) {
	if client == nil {
		return nil, nil, errors.New("tui: nil client")
	}
	if screen == nil {
		return nil, nil, errors.New("tui: nil screen")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.HistoryLimit <= 0 {
		opts.HistoryLimit = defaultHistoryLimit
	}
	opts.HistoryLimit = min(opts.HistoryLimit, maxHistoryLimit)
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.BrowseDir == "" {
		// Where the user started chatx is where their files most likely are.
		if wd, err := os.Getwd(); err == nil {
			opts.BrowseDir = wd
		} else if home, err := os.UserHomeDir(); err == nil {
			opts.BrowseDir = home
		} else {
			opts.BrowseDir = "."
		}
	}
	useTerminalColours()

	u := &UI{
		client:   client,
		screen:   screen,
		opts:     opts,
		log:      logger,
		me:       client.Whoami(),
		app:      tview.NewApplication(),
		updates:  make(chan func(), 64),
		closing:  make(chan struct{}),
		appDone:  make(chan struct{}),
		quit:     make(chan struct{}),
		runDone:  make(chan struct{}),
		bindings: DefaultBindings(),
	}
	// Subscribe now, not in Run: the client may publish its first registry
	// status between New and Run, and nothing replays it.
	var subCtx context.Context
	subCtx, u.unsubscribe = context.WithCancel(context.Background())
	u.events = client.Subscribe(subCtx)
	u.commands = DefaultCommands()
	u.build()
	u.app.SetScreen(screen)
	u.app.EnableMouse(true)
	u.app.EnablePaste(true)
	u.app.SetInputCapture(u.capture)
	u.app.SetRoot(u.pages, true).SetFocus(u.input.field)
	return u, u.cleanup, nil
}

// cleanup is New's cleanup function.
func (u *UI) cleanup() {
	if u.started.CompareAndSwap(false, true) {
		u.unsubscribe()
		u.screen.Fini()
		close(u.runDone)
		return
	}
	u.requestQuit()
	<-u.runDone
}

// build makes the widgets and the layout.
func (u *UI) build() {
	u.groups = newGroupsView()
	u.peers = newPeersPane(u)
	u.conv = newConversationPane(u)
	u.input = newInputPane(u)
	u.transfers = newTransfersPane(u)
	u.status = newStatusBar(u)
	u.notice = tview.NewTextView().SetDynamicColors(true).SetWrap(false)
	u.bar = tview.NewTextView().SetDynamicColors(true).SetWrap(false).SetText(helpBar(u.bindings))
	u.help = newHelpScreen(u)
	u.safety = newSafetyScreen()
	u.browser = newBrowser(u)
	u.offer = newOfferDialog()
	u.keyChange = newKeyChangeDialog()

	right := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(u.conv.view, 0, 1, false).
		AddItem(u.transfers.table, 6, 0, false)
	panes := tview.NewFlex().
		AddItem(u.peers.table, 24, 0, false).
		AddItem(right, 0, 1, false)
	main := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(panes, 0, 1, false).
		AddItem(u.notice, 1, 0, false).
		AddItem(u.input.field, 1, 0, true).
		AddItem(u.bar, 1, 0, false).
		AddItem(u.status.view, 1, 0, false)
	u.pages = tview.NewPages().AddPage(pageMain, main, true, true)
}

// Run shows the UI until the user quits or ctx is cancelled, then stops every
// goroutine it started and finalises the screen. It may be called once.
func (u *UI) Run(ctx context.Context) error {
	if !u.started.CompareAndSwap(false, true) {
		return errors.New("tui: Run called twice, or after the cleanup")
	}
	defer close(u.runDone)
	defer u.unsubscribe()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u.ctx = ctx

	appErr := make(chan error, 1)
	go func() {
		err := u.app.Run()
		close(u.appDone)
		appErr <- err
	}()

	funnelDone := make(chan struct{})
	go u.funnel(u.events, funnelDone)
	u.post(func() {
		u.status.render(u)
		u.loadAll()
		u.lastInput = time.Now()
	})
	u.workers.Add(1)
	go u.tick(ctx)

	var err error
	appEnded := false
	select {
	case <-ctx.Done():
	case <-u.quit:
	case err = <-appErr:
		appEnded = true
	}
	// Shut down in an order that never waits on a stopped tview loop: first the
	// workers and the funnel (the loop still answers their queued updates),
	// then the loop itself.
	u.spawnMu.Lock()
	u.stopping = true // no worker starts after this, so Wait below is final
	u.spawnMu.Unlock()
	close(u.closing)
	cancel()
	<-funnelDone
	u.workers.Wait()
	if !appEnded {
		u.app.Stop()
		err = <-appErr
	}
	if err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	return nil
}

// funnel is the one goroutine that hands work to the UI goroutine: client
// events and the results of client calls made by workers.
func (u *UI) funnel(events <-chan ports.Event, done chan<- struct{}) {
	defer close(done)
	for {
		var f func()
		select {
		case <-u.closing:
			return
		case <-u.appDone:
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			f = func() { u.handleEvent(ev) }
		case f = <-u.updates:
		}
		applied := make(chan struct{})
		go func() {
			u.app.QueueUpdateDraw(f)
			close(applied)
		}()
		select {
		case <-applied:
		case <-u.appDone: // the loop ended by itself: nobody will run f
			return
		}
	}
}

// post hands f to the UI goroutine. It is for goroutines other than the UI
// goroutine; it drops f once Run is shutting down.
func (u *UI) post(f func()) {
	select {
	case u.updates <- f:
	case <-u.closing:
	}
}

// spawn runs a client call off the UI goroutine, with a timeout, and hands
// its result to the UI goroutine through the funnel. Called on the UI
// goroutine only.
func (u *UI) spawn(what string, call func(ctx context.Context) (func(), error)) {
	u.spawnMu.Lock()
	defer u.spawnMu.Unlock()
	if u.stopping || u.ctx == nil {
		return
	}
	u.workers.Add(1)
	go func() {
		defer u.workers.Done()
		ctx, cancel := context.WithTimeout(u.ctx, callTimeout)
		defer cancel()
		apply, err := call(ctx)
		if err != nil {
			if u.ctx.Err() != nil {
				return
			}
			u.log.Warn("tui: client call failed", "call", what, "err", err)
			u.post(func() { u.showError(what, err) })
			return
		}
		if apply != nil {
			u.post(apply)
		}
	}()
}

// tick refreshes what depends on the clock: typing indicators, rates and the
// notice line.
func (u *UI) tick(ctx context.Context) {
	defer u.workers.Done()
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n%pathRefreshTicks == 0 {
				u.loadPaths()
			}
			u.post(func() {
				if !u.noticeAt.IsZero() && time.Since(u.noticeAt) > noticeLifetime {
					u.notice.SetText("")
					u.noticeAt = time.Time{}
				}
				u.conv.pruneTyping()
				u.conv.renderTitle(u)
				u.checkIdle()
			})
		}
	}
}

// requestQuit asks Run to return; safe from the UI goroutine (a key handler).
func (u *UI) requestQuit() {
	u.quitOnce.Do(func() { close(u.quit) })
}

// capture is the application's key capture: the binding table decides.
func (u *UI) capture(ev *tcell.EventKey) *tcell.EventKey {
	u.inputSeen()
	if u.dispatch(ev) {
		return nil
	}
	if ev.Key() == tcell.KeyCtrlC { // tview would stop the loop behind Run's back
		u.requestQuit()
		return nil
	}
	switch u.overlay {
	case pageOffer, pageKeyChange, pageSafety, pageCert, pageRequests:
		return nil // modal: keys outside the binding table do nothing
	case "":
		switch focus := u.app.GetFocus(); {
		case focus == u.peers.table && ev.Key() == tcell.KeyRune:
			u.peers.editFilter(u, 1, ev.Rune())
			return nil
		case focus != u.input.field && ev.Key() == tcell.KeyRune:
			// Typing anywhere else (after a click on the conversation,
			// say) goes to the input line.
			u.app.SetFocus(u.input.field)
		}
	}
	return ev
}

// activeScopes are the scopes whose bindings apply now, most specific first.
func (u *UI) activeScopes() []Scope {
	if u.overlay != "" {
		return []Scope{overlayScopes[u.overlay]}
	}
	var pane Scope
	switch u.app.GetFocus() {
	case u.input.field:
		pane = ScopeInput
	case u.peers.table:
		pane = ScopePeers
	case u.transfers.table:
		pane = ScopeTransfers
	}
	if pane == "" {
		return []Scope{ScopeGlobal}
	}
	return []Scope{pane, ScopeGlobal}
}

// showOverlay puts an overlay page in front and gives it the keys.
func (u *UI) showOverlay(name string, p tview.Primitive, focus tview.Primitive) {
	if u.pages.HasPage(name) {
		u.pages.RemovePage(name)
	}
	u.pages.AddPage(name, p, true, true)
	u.overlay = name
	u.app.SetFocus(focus)
}

// closeOverlay removes the front overlay; a waiting one (a queued offer or
// key change) comes next.
func (u *UI) closeOverlay() {
	if u.overlay == "" {
		return
	}
	u.pages.RemovePage(u.overlay)
	u.overlay = ""
	u.app.SetFocus(u.input.field)
	u.nextDialog()
}

// nextDialog shows the next waiting key change or offer, key changes first.
func (u *UI) nextDialog() {
	if u.overlay != "" {
		return
	}
	if u.keyChange.hasPending() {
		u.showKeyChange()
		return
	}
	if u.offer.hasPending() {
		u.showOffer()
	}
}

func (u *UI) focusInput() {
	if u.conv.searching {
		u.conv.endSearch(u)
	}
	u.app.SetFocus(u.input.field)
}

func (u *UI) focusPeers()     { u.app.SetFocus(u.peers.table) }
func (u *UI) focusTransfers() { u.app.SetFocus(u.transfers.table) }

// showNotice writes a line of information above the input line. text is
// already escaped by the caller where it holds outside strings.
func (u *UI) showNotice(text string) {
	u.notice.SetText(text)
	u.noticeAt = time.Now()
	u.noticeErr = strings.HasPrefix(text, "[red]✗")
}

// showError reports a failed action. A key change gets its blocking warning.
func (u *UI) showError(what string, err error) {
	var kc *domain.KeyChangedError
	if errors.As(err, &kc) {
		u.queueKeyChange(kc.Name, kc.Old, kc.New)
	}
	u.showNotice("[red]✗[-] " + escapeLine(what+": "+err.Error()))
}

// loadAll fetches the peers and the transfers.
func (u *UI) loadAll() {
	u.loadPeers()
	u.loadGroups()
	u.spawn("list transfers", func(ctx context.Context) (func(), error) {
		list, err := u.client.Transfers(ctx)
		if err != nil {
			return nil, err
		}
		return func() {
			for i := len(list) - 1; i >= 0; i-- {
				u.updateTransfer(list[i])
			}
		}, nil
	})
}

// loadPeers fetches the peers list again. Call it on the UI goroutine.
func (u *UI) loadPeers() {
	since := u.peers.seq
	u.spawn("list peers", func(ctx context.Context) (func(), error) {
		list, err := u.client.Peers(ctx)
		if err != nil {
			return nil, err
		}
		return func() { u.setPeers(list, since) }, nil
	})
}

// loadPaths refreshes how each peer is reached: paths and round trips
// change without an event.
func (u *UI) loadPaths() {
	u.spawn("list peers", func(ctx context.Context) (func(), error) {
		list, err := u.client.Peers(ctx)
		if err != nil {
			return nil, err
		}
		return func() { u.setPaths(list) }, nil
	})
}

// handleEvent applies one client event; on the UI goroutine.
func (u *UI) handleEvent(ev ports.Event) {
	switch e := ev.(type) {
	case ports.MessageEvent:
		u.onMessage(e.Message)
	case ports.MessageStateEvent:
		u.conv.setState(u, e.Peer, e.ID, e.State)
	case ports.MailExpiredEvent:
		u.showNotice(fmt.Sprintf("[red]✗[-] a message from %s sent %s expired unread in your mailbox at the registry",
			escapeLine(e.From.String()), e.SentAt.In(u.opts.Location).Format("Jan 2 15:04")))
	case ports.PresenceEvent:
		u.peers.presence(u, e.Peer)
	case ports.ReachabilityEvent:
		u.conv.setReachable(u, e)
	case ports.DirectoryStatusEvent:
		u.status.setDirectory(u, e.Connected, e.Err)
		if e.CertChanged && (u.overlay == "" || u.overlay == pageHelp) {
			u.showCertWarning(e.Err)
		}
	case ports.TransferEvent:
		u.updateTransfer(e.Transfer)
	case ports.KeyChangedEvent:
		u.queueKeyChange(e.Name, e.Old, e.New)
		u.peers.markKeyChanged(u, e.Name, true)
	case ports.TypingEvent:
		u.conv.typing(u, e.From)
	case ports.RequestEvent:
		u.onRequest(e)
	case ports.ContactEvent:
		u.onContactEvent(e)
	case ports.RefusedEvent:
		u.onRefused(e)
	default:
		if !u.handleGroupEvent(ev) {
			u.log.Debug("tui: unknown event", "type", fmt.Sprintf("%T", ev))
		}
	}
}

// onMessage shows a stored message: in the open conversation, or as an unread
// count on its peer.
func (u *UI) onMessage(m domain.Message) {
	peer := m.Peer()
	if u.conv.isOpen(peer) {
		u.conv.add(u, m)
		if m.Direction() == domain.Incoming {
			u.markRead(peer)
		}
		return
	}
	if m.Direction() == domain.Incoming {
		u.peers.addUnread(u, peer)
		u.bell()
	}
}

// bell rings the terminal bell, unless Options.NoBell.
func (u *UI) bell() {
	if !u.opts.NoBell {
		_ = u.screen.Beep()
	}
}

func (u *UI) markRead(peer domain.Username) {
	u.spawn("mark read", func(ctx context.Context) (func(), error) {
		return nil, u.client.MarkRead(ctx, peer)
	})
}

// openConversation makes peer the current conversation and loads its history.
func (u *UI) openConversation(peer domain.Username) {
	if u.conv.isOpen(peer) && !u.conv.searching && !u.groupOpen() {
		return
	}
	u.closeGroup()
	if !u.conv.isOpen(peer) {
		u.input.switchDraft(u.conv.peer, peer)
		if !u.conv.peer.IsZero() && u.noticeErr {
			u.notice.SetText("") // the error was about the conversation left
			u.noticeAt, u.noticeErr = time.Time{}, false
		}
	}
	u.conv.open(u, peer)
	u.peers.clearUnread(u, peer)
	limit := u.opts.HistoryLimit
	u.spawn("load history", func(ctx context.Context) (func(), error) {
		msgs, err := u.client.History(ctx, peer, limit)
		if err != nil {
			return nil, err
		}
		return func() { u.conv.setHistory(u, peer, msgs) }, nil
	})
	u.markRead(peer)
}

// current is the peer of the open conversation (zero when none).
func (u *UI) current() domain.Username { return u.conv.peer }
