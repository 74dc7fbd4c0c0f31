package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// TransferFile is "send this file (or folder) to that person": it describes
// the files and offers them at once (they are hashed while they are sent), and once the peer accepts streams them
// one after the other, reporting progress. A lost link interrupts the
// transfer; it resumes, from the bytes the receiver already has, when the
// peer is reachable again — also after a restart, since the transfer and the
// path it reads from are stored.
type TransferFile struct {
	me      domain.LocalIdentity
	local   ports.LocalFiles
	files   ports.FileTransport
	link    ports.MessageLink
	book    *transferBook
	verify  *VerifyContact
	backoff Backoff
	mail    *mailDelivery // nil: offers to offline peers wait for them
	paths   filePaths     // the path of each file (transfer_filepath.go)

	mu      sync.Mutex
	runCtx  context.Context
	wg      sync.WaitGroup
	running map[domain.TransferID]*outgoingRun
	warming map[string]bool // peers being warmed (ports.FileWarmer), by name key
}

// maxRefusals is how many refused streams in a row fail a transfer.
const maxRefusals = 3

type outgoingRun struct {
	cancel context.CancelFunc
	nudge  chan struct{}
}

// TransferFileInput is what to send and to whom.
type TransferFileInput struct {
	To   domain.Username
	Path string
}

// NewTransferFile builds the use-case.
func NewTransferFile(me domain.LocalIdentity, local ports.LocalFiles, files ports.FileTransport, link ports.MessageLink,
	store ports.TransferStore, verify *VerifyContact, clock ports.Clock, events ports.EventSink, backoff Backoff) (*TransferFile, error) {
	switch {
	case me.IsZero():
		return nil, errNilPort("identity")
	case local == nil:
		return nil, errNilPort("local files")
	case files == nil:
		return nil, errNilPort("file transport")
	case link == nil:
		return nil, errNilPort("message link")
	case store == nil:
		return nil, errNilPort("transfer store")
	case verify == nil:
		return nil, errNilPort("verify use-case")
	case clock == nil:
		return nil, errNilPort("clock")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	return &TransferFile{me: me, local: local, files: files, link: link, book: newTransferBook(store, clock, events),
		verify: verify, backoff: backoff.orDefault(), running: make(map[domain.TransferID]*outgoingRun), warming: make(map[string]bool),
		paths: newFilePaths(domain.FilePathAuto, files, link)}, nil
}

// Handle describes, stores and offers path to in.To, reading none of its
// files. The offer is
// stored even when the peer is offline; it is sent when the peer comes
// online.
func (h *TransferFile) Handle(ctx context.Context, in TransferFileInput) (domain.Transfer, error) {
	if err := h.verify.Recipient(ctx, in.To); err != nil {
		return domain.Transfer{}, err
	}
	name, entries, err := h.local.Scan(ctx, in.Path)
	if err != nil {
		return domain.Transfer{}, fmt.Errorf("read %s: %w", in.Path, err)
	}
	if len(entries) > domain.MaxTransferFiles {
		return domain.Transfer{}, fmt.Errorf("%s: %w: %d files (at most %d)", in.Path, domain.ErrTooLarge, len(entries), domain.MaxTransferFiles)
	}
	single := len(entries) == 1 && entries[0].Path == name
	if single {
		name = domain.SafeFileName(name)
		entries[0].Path = name
	}
	// No file is read before the offer: each is hashed while it is sent,
	// and the receiver checks that hash before the file gets its name.
	m, err := domain.NewManifest(name, entries)
	if err != nil {
		return domain.Transfer{}, fmt.Errorf("offer %s: %w", in.Path, err)
	}
	t, err := domain.NewTransfer(domain.NewTransferID(), in.To, domain.Outgoing, m, h.book.clock.Now())
	if err != nil {
		return domain.Transfer{}, err
	}
	t = t.WithSource(in.Path)
	if err := h.book.create(ctx, t); err != nil {
		return domain.Transfer{}, err
	}
	if err := h.sendOffer(ctx, t); err != nil {
		slog.Info("offer waits for the peer", "peer", in.To.String(), "transfer", t.ID().Short(), "err", err)
	}
	return t, nil
}

func (h *TransferFile) sendOffer(ctx context.Context, t domain.Transfer) error {
	peer, err := h.verify.PeerForSend(ctx, t.Peer())
	if err != nil {
		if h.mail != nil && errors.Is(err, domain.ErrPeerOffline) {
			h.mail.parkOffer(ctx, t) // the offer waits in the peer's mailbox; the data flows once both are online
		}
		return err
	}
	if err := sendEnvelope(ctx, h.link, peer, ports.Envelope{Kind: ports.KindOffer, TransferID: t.ID(), Manifest: t.Manifest()}); err != nil {
		return err
	}
	h.warm(peer)
	return nil
}

// warm readies the way of the first stream to peer while the offer waits
// for its answer, when the file will ride QUIC and the transport can
// (ports.FileWarmer): the connection is then up when the accept comes.
// One warm-up per peer at a time; before Run, none.
func (h *TransferFile) warm(peer domain.Peer) {
	w, ok := h.files.(ports.FileWarmer)
	if !ok {
		return
	}
	if path, _ := domain.ChooseFilePath(h.paths.mode, h.paths.link.Path(peer.Identity)); path == domain.FilePathTCP && h.paths.tcp != nil {
		return // a TCP file connection is one per file: nothing to keep ready
	}
	key := peer.Name().Key()
	h.mu.Lock()
	ctx := h.runCtx
	if ctx == nil || h.warming[key] {
		h.mu.Unlock()
		return
	}
	h.warming[key] = true
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		if err := w.Warm(ctx, peer); err != nil {
			slog.Debug("file path not warmed", "peer", peer.Name().String(), "err", err)
		}
		h.mu.Lock()
		delete(h.warming, key)
		h.mu.Unlock()
	}()
}

// Accepted takes the receiver's KindAccept and starts streaming.
func (h *TransferFile) Accepted(ctx context.Context, from domain.Identity, id domain.TransferID) error {
	// Not waited for on the disk: lost, the offer is sent again and the
	// receiver answers again.
	t, err := h.book.updateSoon(ctx, id, func(t *domain.Transfer, now time.Time) error {
		if t.Direction() != domain.Outgoing || !t.Peer().Equal(from.Name()) {
			return fmt.Errorf("%w: transfer %s is not ours to %s", domain.ErrNotFound, id.Short(), from.Name())
		}
		if t.State() == domain.TransferOffered {
			return t.Accept(now)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if t.State() == domain.TransferCancelled {
		// An offer cancelled while the peer was away and taken from its
		// mailbox since: tell it, or its transfer waits for bytes forever.
		peer, err := h.verify.PeerForSend(ctx, from.Name())
		if err == nil {
			err = sendEnvelope(ctx, h.link, peer, ports.Envelope{Kind: ports.KindCancel, TransferID: id})
		}
		if err != nil {
			slog.Info("cancel not delivered", "peer", from.Name().String(), "transfer", id.Short(), "err", err)
		}
		return nil
	}
	if t.State().Terminal() {
		return nil
	}
	h.start(id)
	return nil
}

// Declined takes the receiver's KindDecline.
func (h *TransferFile) Declined(ctx context.Context, from domain.Identity, id domain.TransferID, reason string) error {
	_, err := h.book.update(ctx, id, func(t *domain.Transfer, now time.Time) error {
		if t.Direction() != domain.Outgoing || !t.Peer().Equal(from.Name()) {
			return fmt.Errorf("%w: transfer %s is not ours to %s", domain.ErrNotFound, id.Short(), from.Name())
		}
		return t.DeclineBecause(withReason("declined by "+from.Name().String(), reason), now)
	})
	if err == nil {
		slog.Info("transfer declined", "peer", from.Name().String(), "transfer", id.Short(), "reason_bytes", len(reason))
	}
	return err
}

// Run recovers transfers interrupted by a restart and drives outgoing
// transfers until ctx is done, returning after every stream stopped.
func (h *TransferFile) Run(ctx context.Context) {
	h.mu.Lock()
	h.runCtx = ctx
	h.mu.Unlock()
	all, err := h.book.store.List(ctx)
	if err != nil {
		slog.Error("list transfers", "err", err)
	}
	for _, t := range all {
		switch t.State() {
		case domain.TransferInProgress, domain.TransferVerifying:
			// We stopped (or crashed) while bytes moved.
			_, _ = h.book.update(ctx, t.ID(), func(t *domain.Transfer, now time.Time) error { return t.Interrupt(now) })
		}
		if t.Direction() == domain.Outgoing {
			switch t.State() {
			case domain.TransferAccepted, domain.TransferInProgress, domain.TransferInterrupted, domain.TransferVerifying:
				h.start(t.ID())
			}
		}
	}
	<-ctx.Done()
	h.mu.Lock()
	h.runCtx = nil
	h.mu.Unlock()
	h.wg.Wait()
}

// PeerOnline re-offers what the peer has not seen and resumes what it
// accepted.
func (h *TransferFile) PeerOnline(ctx context.Context, peer domain.Username) {
	all, err := h.book.store.List(ctx)
	if err != nil {
		slog.Error("list transfers", "err", err)
		return
	}
	for _, t := range all {
		if t.Direction() != domain.Outgoing || !t.Peer().Equal(peer) {
			continue
		}
		switch t.State() {
		case domain.TransferOffered:
			if err := h.sendOffer(ctx, t); err != nil {
				slog.Debug("re-offer", "peer", peer.String(), "transfer", t.ID().Short(), "err", err)
			}
		case domain.TransferAccepted, domain.TransferInProgress, domain.TransferInterrupted:
			h.start(t.ID())
		}
	}
}

// start drives transfer id unless it is driven already (then it is nudged
// to retry now). Before Run it does nothing.
func (h *TransferFile) start(id domain.TransferID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.running[id]; ok {
		select {
		case r.nudge <- struct{}{}:
		default:
		}
		return
	}
	if h.runCtx == nil {
		return
	}
	ctx, cancel := context.WithCancel(h.runCtx)
	r := &outgoingRun{cancel: cancel, nudge: make(chan struct{}, 1)}
	h.running[id] = r
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer cancel()
		h.drive(ctx, id, r)
		h.mu.Lock()
		delete(h.running, id)
		h.mu.Unlock()
	}()
}

// stop cancels the stream of transfer id, if one runs.
func (h *TransferFile) stop(id domain.TransferID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.running[id]; ok {
		r.cancel()
	}
}

// drive streams transfer id until it ends, retrying with backoff after
// interruptions.
func (h *TransferFile) drive(ctx context.Context, id domain.TransferID, r *outgoingRun) {
	wait := time.Duration(0)
	refusals := 0
	var firstRefusal error     // the receiver's first word on it says most (later ones: "failed")
	sent := make(map[int]bool) // files the receiver confirmed in this run
	for {
		t, err := h.book.get(ctx, id)
		if err != nil || t.State().Terminal() || t.State() == domain.TransferOffered {
			return
		}
		err = h.sendFiles(ctx, t, sent)
		if err == nil {
			return
		}
		if cur, gerr := h.book.get(context.WithoutCancel(ctx), id); gerr == nil && cur.State().Terminal() {
			return // cancelled (by either side) or declined meanwhile
		}
		var kc *domain.KeyChangedError
		if errors.Is(err, ports.ErrTransferRefused) {
			// The receiver's KindCancel or KindDecline may still be on its
			// way; give it a chance before calling the transfer failed.
			refusals++
			if firstRefusal == nil {
				firstRefusal = err
			}
		} else {
			refusals, firstRefusal = 0, nil
		}
		switch {
		case errors.Is(err, ports.ErrIntegrity), refusals >= maxRefusals:
			reason := err.Error()
			if refusals >= maxRefusals {
				reason = firstRefusal.Error()
			}
			_, _ = h.book.update(context.WithoutCancel(ctx), id, func(t *domain.Transfer, now time.Time) error { return t.Fail(reason, now) })
			slog.Warn("transfer failed", "transfer", id.Short(), "err", err)
			return
		case errors.As(err, &kc):
			h.verify.recordKeyChange(ctx, t.Peer())
		}
		_, _ = h.book.update(context.WithoutCancel(ctx), id, func(t *domain.Transfer, now time.Time) error { return t.Interrupt(now) })
		if ctx.Err() != nil {
			return
		}
		slog.Info("transfer interrupted; will resume", "transfer", id.Short(), "err", err)
		wait = h.backoff.next(wait)
		timer := time.NewTimer(jitter(wait))
		select {
		case <-ctx.Done():
		case <-r.nudge:
			wait = 0
		case <-timer.C:
		}
		timer.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// sendFiles streams the files of t that the receiver does not have yet:
// those not in sent and not wholly below the bytes it confirmed (t.Done()).
func (h *TransferFile) sendFiles(ctx context.Context, t domain.Transfer, sent map[int]bool) error {
	peer, err := h.verify.PeerForSend(ctx, t.Peer())
	if err != nil {
		return err
	}
	m := t.Manifest()
	confirmed := int64(0)
	if t.State() != domain.TransferAccepted {
		confirmed = t.Done()
	}
	have := func(i int, base int64) bool {
		size := m.Files[i].Size
		return sent[i] || (size > 0 && base+size <= confirmed)
	}
	first, base := 0, int64(0)
	for first < len(m.Files) && have(first, base) {
		base += m.Files[first].Size
		first++
	}
	// Not waited for on the disk either: lost, an accepted transfer starts
	// again after a restart, from what the receiver says it has.
	if _, err := h.book.updateQuietlySoon(ctx, t.ID(), func(t *domain.Transfer, now time.Time) error { return startAt(t, base, now) }); err != nil {
		return err
	}
	report := func(ctx context.Context, done int64) {
		_, _ = h.book.update(ctx, t.ID(), func(t *domain.Transfer, now time.Time) error { return t.Progress(done, now) })
	}
	ticker := startProgress(ctx, base, report)
	defer ticker.close()
	for i := first; i < len(m.Files); i++ {
		if !have(i, base) {
			if err := h.sendFile(ctx, peer, t, i, base, ticker); err != nil {
				return err
			}
			sent[i] = true
		}
		base += m.Files[i].Size
		ticker.set(base)
		// Stored now so that a restart does not send this file again.
		_, _ = h.book.updateQuietly(ctx, t.ID(), func(t *domain.Transfer, now time.Time) error { return t.Progress(base, now) })
	}
	_, err = h.book.update(ctx, t.ID(), func(t *domain.Transfer, now time.Time) error {
		if err := t.Verify(now); err != nil {
			return err
		}
		return t.Complete(now)
	})
	if err == nil {
		slog.Info("transfer completed", "peer", t.Peer().String(), "transfer", t.ID().Short())
	}
	return err
}

func (h *TransferFile) sendFile(ctx context.Context, peer domain.Peer, t domain.Transfer, i int, base int64, ticker *progressTicker) error {
	f := t.Manifest().Files[i]
	rel := f.Path
	if !t.Manifest().IsFolder() {
		rel = ""
	}
	src, err := h.local.Open(t.Source(), rel)
	if err != nil {
		return fmt.Errorf("%w: open %s: %v", ports.ErrIntegrity, f.Path, err)
	}
	defer src.Close()
	if src.Size() != f.Size {
		return fmt.Errorf("%w: %s changed size since the offer", ports.ErrIntegrity, f.Path)
	}
	err = h.sendOver(ctx, peer, t.ID(), i, src, func(done int64) { ticker.set(base + min(done, f.Size)) })
	if err != nil {
		return fmt.Errorf("send %s of transfer %s: %w", f.Path, t.ID().Short(), err)
	}
	return nil
}
