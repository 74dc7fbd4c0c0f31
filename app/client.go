package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// AutoAccept accepts every offer that fits the size limit and the free
// space (for bots and scripted tests: `chatx jsonrpc --auto-accept`).
type AutoAccept bool

// Options tune a client. The zero value is a sensible default.
type Options struct {
	// MaxIncomingSize refuses offers over this many bytes (0: no limit).
	MaxIncomingSize MaxIncomingSize
	// AutoAccept accepts offers without asking.
	AutoAccept AutoAccept
	// Retry paces retries of messages, transfers and the directory watch
	// (zero: DefaultBackoff, 1 s doubling to 30 s).
	Retry Backoff
	// Mail tunes offline delivery through the registry's mailbox.
	Mail MailOptions
	// AcceptFromAnyone treats every peer as a contact (no requests).
	AcceptFromAnyone AcceptFromAnyone
	// Quarantine caps the message requests (zero fields:
	// domain.DefaultQuarantineLimits).
	Quarantine domain.QuarantineLimits
	// ContactQuota and StrangerQuota limit what one peer may make us
	// store (zero fields: DefaultContactQuota, DefaultStrangerQuota).
	ContactQuota, StrangerQuota Quota
	// FilePath chooses the path of files sent (--file-path; zero: auto).
	FilePath FilePath
}

// choreQueueSize bounds the background work peers can queue (answers to
// offers, work for a peer that came online).
const choreQueueSize = 256

// unregisterTimeout bounds how long shutdown waits to tell the directory.
const unregisterTimeout = 5 * time.Second

// Client is a running ChatX client: the use-cases composed behind the
// driving port ports.Client, and Run, which serves the links and watches
// presence.
type Client struct {
	me        domain.LocalIdentity
	link      ports.MessageLink
	files     ports.FileTransport
	transfers ports.TransferStore
	bus       *Bus
	opts      Options

	register     *Register
	discover     *DiscoverPeers
	verify       *VerifyContact
	send         *SendMessage
	receive      *ReceiveMessage
	transferFile *TransferFile
	receiveFile  *ReceiveFile
	accept       *AcceptTransfer
	decline      *DeclineTransfer
	cancel       *CancelTransfer
	search       *SearchHistory
	groups       *groupParts
	mail         *mailDelivery // nil: no offline delivery
	contacts     *ManageContacts
	status       *presenceStatus

	running atomic.Bool
	chores  chan func(context.Context)
}

var _ ports.Client = (*Client)(nil)

// NewClient composes a client from its ports.
func NewClient(me domain.LocalIdentity, dir ports.Directory, link ports.MessageLink, files ports.FileTransport,
	messages ports.MessageStore, trust ports.TrustStore, quarantine ports.QuarantineStore, transfers ports.TransferStore, local ports.LocalFiles,
	downloads ports.Downloads, groups ports.GroupStore, clock ports.Clock, bus *Bus, mail MailPorts, opts Options) (*Client, error) {
	if bus == nil {
		return nil, errNilPort("event bus")
	}
	c := &Client{me: me, link: link, files: files, transfers: transfers, bus: bus, opts: opts,
		chores: make(chan func(context.Context), choreQueueSize)}
	var err error
	if c.register, err = NewRegister(me, dir, link, files); err != nil {
		return nil, err
	}
	if c.verify, err = NewVerifyContact(me, trust, dir, clock, bus); err != nil {
		return nil, err
	}
	if c.discover, err = NewDiscoverPeers(me, dir, trust, c.verify, bus, opts.Retry); err != nil {
		return nil, err
	}
	if c.send, err = NewSendMessage(me, link, messages, c.verify, clock, bus, opts.Retry); err != nil {
		return nil, err
	}
	if c.receive, err = NewReceiveMessage(me, link, messages, c.verify, c.send, bus); err != nil {
		return nil, err
	}
	if c.transferFile, err = NewTransferFile(me, local, files, link, transfers, c.verify, clock, bus, opts.Retry); err != nil {
		return nil, err
	}
	if c.receiveFile, err = NewReceiveFile(me, downloads, transfers, clock, bus); err != nil {
		return nil, err
	}
	if c.accept, err = NewAcceptTransfer(downloads, link, transfers, c.verify, clock, bus, opts.MaxIncomingSize); err != nil {
		return nil, err
	}
	if c.decline, err = NewDeclineTransfer(link, transfers, c.verify, clock, bus); err != nil {
		return nil, err
	}
	if opts.FilePath != "" {
		c.transferFile.paths.mode = opts.FilePath
	}
	if c.cancel, err = NewCancelTransfer(link, downloads, transfers, c.verify, c.transferFile, c.receiveFile, clock, bus); err != nil {
		return nil, err
	}
	if c.search, err = NewSearchHistory(messages); err != nil {
		return nil, err
	}
	c.search.overlay = c.send.overlayShown
	if c.contacts, err = newManageContacts(me, trust, quarantine, messages, c.verify, c.receive, clock, bus, opts); err != nil {
		return nil, err
	}
	c.contacts.offer = c.offered
	c.status = newPresenceStatus()
	if c.groups, err = newGroupParts(c, groups, clock); err != nil {
		return nil, err
	}
	// One book for every transfer use-case, so their changes never overlap.
	book := c.transferFile.book
	c.receiveFile.book, c.accept.book, c.decline.book, c.cancel.book = book, book, book, book
	if mail.enabled() {
		pv, err := NewPeerVerifier(trust, dir, clock, bus)
		if err != nil {
			return nil, err
		}
		c.mail = newMailDelivery(me, mail, opts.Mail, clock, bus, trust, pv, c.send)
		c.mail.handle = router{c}.HandleEnvelope
		c.send.mail, c.receive.mail, c.transferFile.mail, c.cancel.mail = c.mail, c.mail, c.mail, c.mail
	}
	c.verify.onAccepted = func(name domain.Username) {
		c.contacts.forget(name)
		c.send.Flush(name)
		c.groups.fanout.Flush(name)
		c.chore(func(ctx context.Context) { c.transferFile.PeerOnline(ctx, name) })
	}
	return c, nil
}

// Run serves the message link and the file transport, registers with the
// directory, follows presence, and delivers the outbox and transfers until
// ctx is done. It unregisters and returns after every goroutine it started
// has stopped: nil on cancellation, or the error that stopped it early
// (domain.ErrNameTaken when another key owns our name).
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("client is running already")
	}
	defer c.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}
	goRun("message link", func(ctx context.Context) error { return c.link.Serve(ctx, router{c}) })
	goRun("file transport", func(ctx context.Context) error { return c.files.Serve(ctx, c.receiveFile) })
	goRun("receive files", func(ctx context.Context) error { c.receiveFile.Run(ctx); return nil })
	goRun("acknowledgements", func(ctx context.Context) error { c.receive.Run(ctx); return nil })
	goRun("chores", func(ctx context.Context) error { c.runChores(ctx); return nil })
	goRun("group writes", func(ctx context.Context) error { c.groups.book.Run(ctx); return nil })
	goRun("group messages", func(ctx context.Context) error { c.groups.receive.Run(ctx); return nil })

	if err := c.registerWithRetry(ctx); err != nil {
		fail(err)
	} else if ctx.Err() == nil {
		slog.Info("registered", "name", c.me.Name().String(), "fingerprint", c.me.Fingerprint().Short())
		c.bus.Publish(ports.RegisteredEvent{Name: c.me.Name()})
		goRun("outbox", func(ctx context.Context) error { c.send.Run(ctx); return nil })
		goRun("group outbox", func(ctx context.Context) error { c.groups.fanout.Run(ctx); return nil })
		goRun("transfers", func(ctx context.Context) error { c.transferFile.Run(ctx); return nil })
		goRun("presence", func(ctx context.Context) error { c.discover.Watch(ctx, c.peerOnline); return nil })
		goRun("contacts' presence", func(ctx context.Context) error { c.pollContacts(ctx); return nil })
		goRun("handshakes", func(ctx context.Context) error { c.runHandshakes(ctx); return nil })
		if c.mail != nil {
			goRun("mailbox", func(ctx context.Context) error { c.mail.Run(ctx, c.opts.Retry); return nil })
		}
		<-ctx.Done()
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), unregisterTimeout)
		if err := c.register.Unregister(uctx); err != nil {
			slog.Warn("unregister", "err", err)
		}
		ucancel()
	}
	cancel()
	wg.Wait()
	errMu.Lock()
	defer errMu.Unlock()
	return firstErr
}

// registerWithRetry registers, retrying with backoff while the directory
// is unreachable. It gives up at once when the directory refuses us
// (domain.ErrNameTaken, domain.ErrInvalidUsername, a bad signature); it
// returns nil when ctx is done first.
func (c *Client) registerWithRetry(ctx context.Context) error {
	retry := c.opts.Retry.orDefault()
	wait := time.Duration(0)
	for {
		err := c.register.Handle(ctx, RegisterInput{})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, domain.ErrNameTaken), errors.Is(err, domain.ErrInvalidUsername), errors.Is(err, domain.ErrBadSignature):
			return err
		case ctx.Err() != nil:
			return nil
		}
		slog.Warn("directory unreachable; will register again", "err", err)
		c.bus.Publish(directoryDown(err))
		wait = retry.next(wait)
		if !sleep(ctx, jitter(wait)) {
			return nil
		}
	}
}

// runHandshakes sends again, every Retry.Max, the transfer envelopes a
// lost link may have swallowed: offers not answered yet, and acceptances
// whose bytes have not started.
func (c *Client) runHandshakes(ctx context.Context) {
	every := c.opts.Retry.orDefault().Max
	for sleep(ctx, jitter(every)) {
		all, err := c.transfers.List(ctx)
		if err != nil {
			slog.Warn("list transfers", "err", err)
			continue
		}
		for _, t := range all {
			if ctx.Err() != nil {
				return
			}
			if _, ok := c.verify.roster.get(t.Peer()); !ok {
				continue // not seen online: its coming online triggers this
			}
			switch {
			case t.Direction() == domain.Outgoing && t.State() == domain.TransferOffered:
				_ = c.transferFile.sendOffer(ctx, t)
			case t.Direction() == domain.Incoming && t.State() == domain.TransferAccepted:
				_ = c.accept.tellSender(ctx, t)
			case t.Direction() == domain.Incoming && t.State() == domain.TransferOffered && bool(c.opts.AutoAccept):
				// Stored by a process that died before accepting it; the
				// sender, whose offer was delivered, does not offer again.
				c.autoAccept(ctx, t.ID())
			}
		}
	}
}

// autoAccept accepts an incoming offer for the AutoAccept option. Over the
// limit, accept declines by itself; over the free space, nobody is there to
// free some: decline, saying why.
func (c *Client) autoAccept(ctx context.Context, id domain.TransferID) {
	err := c.accept.Handle(ctx, AcceptTransferInput{ID: id})
	var space *noSpaceError
	switch {
	case errors.As(err, &space):
		_ = c.decline.Handle(ctx, DeclineTransferInput{ID: id, Reason: space.reason()})
	case err != nil && !errors.Is(err, domain.ErrTooLarge):
		slog.Warn("auto-accept", "transfer", id.Short(), "err", err)
	}
}

// peerOnline is called by the presence watch for a peer that came online.
func (c *Client) peerOnline(p domain.Peer) {
	name := p.Name()
	c.send.Flush(name)
	c.groups.fanout.Flush(name)
	c.groups.book.memberOnline(context.Background(), name)
	c.chore(func(ctx context.Context) {
		c.accept.PeerOnline(ctx, name)
		c.transferFile.PeerOnline(ctx, name)
		c.tellStatus(ctx, name)
	})
}

// chore queues background work; when the queue is full it is dropped (what
// it would have done is retried by the outbox and transfer loops or on the
// peer's next appearance).
func (c *Client) chore(f func(context.Context)) {
	select {
	case c.chores <- f:
	default:
		slog.Warn("background queue full: work dropped")
	}
}

func (c *Client) runChores(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-c.chores:
			f(ctx)
		}
	}
}

// router passes envelopes from the link to the use-case they are for.
type router struct{ c *Client }

func (r router) HandleEnvelope(ctx context.Context, from domain.Identity, env ports.Envelope) error {
	c := r.c
	// Who may reach us, and how much: blocks, requests, quotas
	// (contacts.go). A link opened before a block still delivers: drop.
	if c.contacts.blocked(ctx, from.Name()) {
		return nil
	}
	if env.Kind == ports.KindChat || env.Kind == ports.KindOffer {
		if pass, err := c.contacts.screen(ctx, from, env); !pass {
			return err
		}
	}
	switch env.Kind {
	case ports.KindChat, ports.KindDelivered, ports.KindRead, ports.KindTyping:
		// Pipelined: a link delivers a peer's envelopes one at a time, and
		// waiting here for each commit would allow one message per fsync.
		// A letter from the mailbox is stored before it is deleted there.
		if isDurable(ctx) {
			return c.receive.Handle(ctx, ReceiveMessageInput{From: from, Envelope: env})
		}
		return c.receive.Pipeline(ctx, ReceiveMessageInput{From: from, Envelope: env})
	case ports.KindOffer:
		return c.offered(ctx, from, env)
	case ports.KindGroupMessage, ports.KindGroupAck, ports.KindGroupLog, ports.KindGroupLogAsk, ports.KindGroupFile:
		return c.groups.receive.Handle(ctx, from, env)
	case ports.KindAccept:
		return c.transferFile.Accepted(ctx, from, env.TransferID)
	case ports.KindDecline:
		return c.transferFile.Declined(ctx, from, env.TransferID, clampReason(env.Reason))
	case ports.KindCancel:
		return c.cancel.Cancelled(ctx, from, env.TransferID, clampReason(env.Reason))
	case ports.KindRefused:
		c.send.refused(from.Name(), env.MessageID, env.Refusal, env.RetryAfter)
		return nil
	case ports.KindStatus:
		return c.statusReceived(ctx, from, env)
	}
	return fmt.Errorf("unknown envelope kind %d from %s", env.Kind, from.Name())
}

// offered takes a file offer from a contact (or a request being accepted).
func (c *Client) offered(ctx context.Context, from domain.Identity, env ports.Envelope) error {
	t, isNew, err := c.receiveFile.Handle(ctx, ReceiveFileInput{From: from, Envelope: env})
	if err != nil {
		if errors.Is(err, domain.ErrUnsafePath) || errors.Is(err, domain.ErrTooLarge) {
			// Refused before it was stored: the sender still hears why.
			id, reason := env.TransferID, err.Error()
			c.chore(func(ctx context.Context) { c.decline.refuseUnstored(ctx, from.Name(), id, reason) })
		}
		return err
	}
	id := t.ID()
	switch {
	case bool(c.opts.AutoAccept) && (isNew || t.State() == domain.TransferOffered):
		// Also an offer stored but never answered: the process that
		// stored it died before its auto-accept ran (make soak).
		c.chore(func(ctx context.Context) { c.autoAccept(ctx, id) })
	case !isNew && t.State() == domain.TransferAccepted:
		c.chore(func(ctx context.Context) { _ = c.accept.tellSender(ctx, t) })
	case !isNew && t.State() == domain.TransferDeclined:
		c.chore(func(ctx context.Context) { c.decline.tellSender(ctx, t, t.Reason()) })
	case !isNew && t.State() == domain.TransferCancelled:
		c.chore(func(ctx context.Context) { c.cancel.tellPeer(ctx, t, "") })
	}
	return nil
}

// clampReason bounds a reason a peer sent before it is stored or shown.
func clampReason(r string) string {
	if len(r) > maxReasonBytes {
		r = strings.ToValidUTF8(r[:maxReasonBytes], "")
	}
	return r
}

// Whoami is our own identity.
func (c *Client) Whoami() domain.Identity { return c.me.Identity }

// Endpoints are the addresses we listen on.
func (c *Client) Endpoints() domain.Endpoints { return c.register.Endpoints() }

// Reachability reports the NAT, our candidates and the last connection
// attempts, as the file transport (which owns the UDP socket) knows them.
func (c *Client) Reachability(context.Context) ports.ReachabilityReport {
	return ports.ReachabilityReport{NAT: c.files.NAT(), Candidates: c.files.Candidates(), Attempts: c.files.Attempts()}
}

// Peers lists peers, online first, with unread counts.
func (c *Client) Peers(ctx context.Context) ([]ports.PeerView, error) {
	views, err := c.discover.Handle(ctx, DiscoverPeersInput{})
	if err != nil {
		return nil, err
	}
	for i := range views {
		views[i].Unread = c.receive.Unread(views[i].Peer.Name())
		views[i].Path = c.link.Path(views[i].Peer.Identity)
		if views[i].Contact {
			views[i].Status = c.status.of(views[i].Peer.Name())
		}
	}
	return views, nil
}

// Send queues text to a peer; writing to someone makes them a contact.
func (c *Client) Send(ctx context.Context, to domain.Username, text string) (domain.Message, error) {
	if err := c.contacts.Add(ctx, to); err != nil {
		return domain.Message{}, err
	}
	return c.send.Handle(ctx, SendMessageInput{To: to, Text: text})
}

// StartSend queues text to a peer without waiting for the store: see
// SendMessage.Start.
func (c *Client) StartSend(ctx context.Context, to domain.Username, text string) (func() (domain.Message, error), error) {
	// Writing to someone makes them a contact, as Send does (a cached
	// relation: no store access on the hot path once it is set).
	if err := c.contacts.Add(ctx, to); err != nil {
		return nil, err
	}
	p, err := c.send.Start(ctx, SendMessageInput{To: to, Text: text})
	if err != nil {
		return nil, err
	}
	return p.Wait, nil
}

// Typing tells the peer we are typing (best effort).
func (c *Client) Typing(ctx context.Context, to domain.Username) error {
	peer, err := c.verify.PeerForSend(ctx, to)
	if err != nil {
		return err
	}
	return sendEnvelope(ctx, c.link, peer, ports.Envelope{Kind: ports.KindTyping})
}

// MarkRead sends read receipts for what the peer wrote since the last time.
func (c *Client) MarkRead(_ context.Context, with domain.Username) error {
	c.receive.MarkRead(with)
	return nil
}

// History returns the last limit messages with a peer, oldest first.
func (c *Client) History(ctx context.Context, with domain.Username, limit int) ([]domain.Message, error) {
	return c.search.History(ctx, SearchHistoryInput{With: with, Limit: limit})
}

// Search finds messages containing every word of query, newest first.
func (c *Client) Search(ctx context.Context, query string, limit int) ([]domain.Message, error) {
	return c.search.Search(ctx, SearchHistoryInput{Query: query, Limit: limit})
}

// SendFile offers a file or folder to a peer.
func (c *Client) SendFile(ctx context.Context, to domain.Username, path string) (domain.Transfer, error) {
	if err := c.contacts.Add(ctx, to); err != nil {
		return domain.Transfer{}, err
	}
	return c.transferFile.Handle(ctx, TransferFileInput{To: to, Path: path})
}

// AcceptTransfer accepts an offer.
func (c *Client) AcceptTransfer(ctx context.Context, id domain.TransferID) error {
	return c.accept.Handle(ctx, AcceptTransferInput{ID: id})
}

// DeclineTransfer declines an offer.
func (c *Client) DeclineTransfer(ctx context.Context, id domain.TransferID) error {
	return c.decline.Handle(ctx, DeclineTransferInput{ID: id})
}

// CancelTransfer stops a transfer, ours or the peer's.
func (c *Client) CancelTransfer(ctx context.Context, id domain.TransferID) error {
	return c.cancel.Handle(ctx, CancelTransferInput{ID: id})
}

// Transfers lists transfers, newest first.
func (c *Client) Transfers(ctx context.Context) ([]domain.Transfer, error) {
	ts, err := c.transfers.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list transfers: %w", err)
	}
	return ts, nil
}

// Safety returns what the user compares to verify a contact.
func (c *Client) Safety(ctx context.Context, name domain.Username) (ports.SafetyView, error) {
	return c.verify.Safety(ctx, VerifyContactInput{Name: name})
}

// SetVerified marks a contact verified or not.
func (c *Client) SetVerified(ctx context.Context, name domain.Username, verified bool) error {
	return c.verify.SetVerified(ctx, VerifyContactInput{Name: name, Verified: verified})
}

// AcceptKeyChange pins the new key of a contact and unblocks sending.
func (c *Client) AcceptKeyChange(ctx context.Context, name domain.Username) error {
	return c.verify.AcceptKeyChange(ctx, VerifyContactInput{Name: name})
}

// Subscribe streams events until ctx is done.
func (c *Client) Subscribe(ctx context.Context) <-chan ports.Event { return c.bus.Subscribe(ctx) }
