package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// maxPendingOffers bounds the offers one peer can leave waiting for an answer.
const maxPendingOffers = 32

// errTransferCancelled stops an incoming stream the user cancelled.
var errTransferCancelled = errors.New("transfer cancelled")

// ReceiveFile is "a peer sends me a file": it records the peer's offer for
// the user to answer and, once accepted, takes the streams of its files into
// part files in the downloads folder, checking each file's hash against the
// sender's (sent after the file's last byte) before it gets its final name.
// It implements ports.FileReceiver.
type ReceiveFile struct {
	me        domain.LocalIdentity
	downloads ports.Downloads
	book      *transferBook

	mu     sync.Mutex
	runCtx context.Context
	active map[domain.TransferID]map[*incomingFile]struct{}
	// hashed keeps, for a file whose stream broke, the hash state of its
	// part at the last chunk boundary, so that the resume in this process
	// need not read the part again.
	hashed domain.FileHashStates[prefixKey]
}

var _ ports.FileReceiver = (*ReceiveFile)(nil)

// ReceiveFileInput is an offer envelope from an authenticated peer.
type ReceiveFileInput struct {
	From     domain.Identity
	Envelope ports.Envelope
}

// NewReceiveFile builds the use-case.
func NewReceiveFile(me domain.LocalIdentity, downloads ports.Downloads, store ports.TransferStore, clock ports.Clock, events ports.EventSink) (*ReceiveFile, error) {
	switch {
	case me.IsZero():
		return nil, errNilPort("identity")
	case downloads == nil:
		return nil, errNilPort("downloads")
	case store == nil:
		return nil, errNilPort("transfer store")
	case clock == nil:
		return nil, errNilPort("clock")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	return &ReceiveFile{me: me, downloads: downloads, book: newTransferBook(store, clock, events),
		active: make(map[domain.TransferID]map[*incomingFile]struct{})}, nil
}

// Run gives progress reporting of incoming files a lifetime: until ctx is done.
func (r *ReceiveFile) Run(ctx context.Context) {
	r.mu.Lock()
	r.runCtx = ctx
	r.mu.Unlock()
	<-ctx.Done()
}

// Handle records an offer. It returns the transfer and whether the offer is
// new; a repeated offer of a transfer we accepted returns it unchanged so the
// caller can answer again.
func (r *ReceiveFile) Handle(ctx context.Context, in ReceiveFileInput) (domain.Transfer, bool, error) {
	from, env := in.From.Name(), in.Envelope
	if old, err := r.book.store.Get(ctx, env.TransferID); err == nil {
		if old.Direction() != domain.Incoming || !old.Peer().Equal(from) {
			return domain.Transfer{}, false, fmt.Errorf("offer %s from %s: the ID is taken", env.TransferID.Short(), from)
		}
		return old, false, nil
	}
	all, err := r.book.store.List(ctx)
	if err != nil {
		return domain.Transfer{}, false, fmt.Errorf("list transfers: %w", err)
	}
	waiting := 0
	for _, t := range all {
		if t.Direction() == domain.Incoming && t.State() == domain.TransferOffered && t.Peer().Equal(from) {
			waiting++
		}
	}
	if waiting >= maxPendingOffers {
		return domain.Transfer{}, false, fmt.Errorf("offer from %s: %w: %d offers wait for an answer", from, domain.ErrTooLarge, waiting)
	}
	files := env.Manifest.Files
	if len(files) == 1 && files[0].Path == env.Manifest.Name {
		// A single file: repair its name as SafeFileName does rather than
		// refusing it (folders must already use safe relative paths).
		files = []domain.FileEntry{{Path: domain.SafeFileName(files[0].Path), Size: files[0].Size, Hash: files[0].Hash}}
	}
	m, err := domain.NewManifest(env.Manifest.Name, files)
	if err != nil {
		return domain.Transfer{}, false, fmt.Errorf("offer %s from %s: %w", env.TransferID.Short(), from, err)
	}
	t, err := domain.NewTransfer(env.TransferID, from, domain.Incoming, m, r.book.clock.Now())
	if err != nil {
		return domain.Transfer{}, false, err
	}
	// An offer on the link is stored without waiting for the disk: lost on
	// a power cut, it is offered again until we answer (and answering
	// makes it durable). One from the mailbox is deleted there once this
	// returns: durable first.
	create := r.book.createSoon
	if isDurable(ctx) {
		create = r.book.create
	}
	if err := create(ctx, t); err != nil {
		return domain.Transfer{}, false, err
	}
	slog.Info("file offered", "peer", from.String(), "transfer", t.ID().Short(), "files", len(m.Files), "bytes", m.TotalSize())
	return t, true, nil
}

// partPath is where file index of m lands under the downloads folder.
func partPath(m domain.Manifest, index int) string {
	if m.IsFolder() {
		return m.Name + "/" + m.Files[index].Path
	}
	return m.Name
}

// Incoming opens file index of transfer id for the stream from the peer,
// whose hashes use alg.
func (r *ReceiveFile) Incoming(ctx context.Context, from domain.Identity, id domain.TransferID, index int, path domain.FilePath, alg domain.FileHashAlg) (ports.IncomingFile, error) {
	if !alg.Valid() {
		return nil, fmt.Errorf("stream of transfer %s: unknown file hash %v", id.Short(), alg)
	}
	t, err := r.book.get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case t.Direction() != domain.Incoming || !t.Peer().Equal(from.Name()):
		return nil, fmt.Errorf("%w: transfer %s is not from %s", domain.ErrNotFound, id.Short(), from.Name())
	case t.State() == domain.TransferCompleted && index >= 0 && index < len(t.Manifest().Files):
		// Every file was verified and committed; the sender did not hear
		// the last word. Tell it so rather than refuse.
		return doneFile{entry: t.Manifest().Files[index]}, nil
	case t.State() != domain.TransferAccepted && t.State() != domain.TransferInProgress && t.State() != domain.TransferInterrupted:
		return nil, fmt.Errorf("transfer %s is %s, not accepted", id.Short(), t.State())
	case index < 0 || index >= len(t.Manifest().Files):
		return nil, fmt.Errorf("transfer %s has no file %d", id.Short(), index)
	}
	m := t.Manifest()
	entry := m.Files[index]
	base := fileBase(m, index)
	part, err := r.downloads.OpenPart(id, partPath(m, index))
	if err != nil {
		return nil, fmt.Errorf("open part of transfer %s: %w", id.Short(), err)
	}
	if t.State() != domain.TransferAccepted && entry.Size > 0 && base+entry.Size <= t.Done() {
		// Every byte of the file arrived before. Committed, unless its part
		// still holds them (a stream that wrote the last byte and broke
		// before the hash was checked: the progress counts written bytes):
		// then the part is resumed at its end like any other.
		if size, err := part.Size(); err == nil && size == 0 {
			part.Close()
			_ = r.downloads.RemovePart(id, partPath(m, index)) // the empty one just opened
			// Committed already; the sender did not hear it. Tell it we
			// have everything so it sends nothing.
			return doneFile{entry: entry}, nil
		}
	}
	f := &incomingFile{r: r, id: id, index: index, last: index == len(m.Files)-1, entry: entry,
		rel: partPath(m, index), base: base, part: part}
	if err := f.loadPrefix(alg); err != nil {
		part.Close()
		return nil, err
	}
	// The answer to the sender does not wait for the disk: the part file
	// itself says where a resume starts.
	// The path the stream rides is shown as the sender shows its own.
	if _, err := r.book.updateQuietlySoon(ctx, id, func(t *domain.Transfer, now time.Time) error {
		if path != domain.FilePathNone {
			*t = t.WithFilePath(path)
		}
		return startAt(t, base+f.written, now)
	}); err != nil {
		part.Close()
		return nil, err
	}
	r.mu.Lock()
	runCtx := r.runCtx
	if runCtx == nil {
		runCtx = context.WithoutCancel(ctx) // stopped by Finish, which the transport always calls
	}
	if r.active[id] == nil {
		r.active[id] = make(map[*incomingFile]struct{})
	}
	r.active[id][f] = struct{}{}
	r.mu.Unlock()
	f.ticker = startProgress(runCtx, base+f.written, func(ctx context.Context, done int64) {
		_, _ = r.book.update(ctx, id, func(t *domain.Transfer, now time.Time) error { return t.Progress(done, now) })
	})
	return f, nil
}

// cancel stops every stream of transfer id; their parts are removed by the
// caller.
func (r *ReceiveFile) cancel(id domain.TransferID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for f := range r.active[id] {
		f.cancelled.Store(true)
	}
}

// incomingFile is one file being received into a part file.
type incomingFile struct {
	r     *ReceiveFile
	id    domain.TransferID
	index int
	last  bool
	entry domain.FileEntry
	rel   string
	base  int64
	part  ports.PartFile
	hash  *domain.FileHasher // the stream's algorithm
	// offer is the chunked SHA-256 of what is written, when the offer
	// carried a hash and the stream hashes with another algorithm: the
	// offer's hash field is always SHA-256 (docs/file-protocol.md §2).
	offer  *domain.FileHasher
	prefix [32]byte
	source [32]byte // the sender's hash of the whole file
	gotSrc bool
	offset int64 // bytes in the part when the stream began
	// written is the bytes in the part now; only the transport's goroutine
	// writes and reads it.
	written int64
	// writeErr is why the part could not be written (a full disk, an I/O
	// error): a local failure that resuming would only repeat.
	writeErr  error
	ticker    *progressTicker
	cancelled atomic.Bool
}

var _ ports.IncomingFile = (*incomingFile)(nil)

// loadPrefix finds where an existing part resumes: at its last whole
// chunk (or its end when it is complete), cutting off a torn tail, with the
// hash (under alg) of what is kept. A part this process wrote before is
// taken up from the hash state kept when its stream broke, when that state
// is of the same algorithm; only what lies beyond that state is read. A
// state of the other algorithm (the part was begun by a stream of another
// version) is dropped and the part read again: a part is only bytes.
func (f *incomingFile) loadPrefix(alg domain.FileHashAlg) error {
	size, err := f.part.Size()
	if err != nil {
		return fmt.Errorf("size of part %s: %w", f.id.Short(), err)
	}
	if size > f.entry.Size {
		size = 0
	}
	off := domain.ResumeOffset(size, f.entry.Size)
	f.hash = domain.NewFileHasher(alg)
	if st, ok := f.r.hashed.Take(f.key()); ok && st.Offset <= off {
		if h, err := domain.ResumeFileHasher(st, alg); err == nil {
			f.hash = h
		}
	}
	if from := f.hash.Written(); from < off {
		if _, err := io.Copy(f.hash, io.NewSectionReader(f.part, from, off-from)); err != nil {
			return fmt.Errorf("hash part %s: %w", f.id.Short(), err)
		}
	}
	f.offer = nil
	if f.entry.Hash != ([32]byte{}) && alg != domain.FileHashSHA256 {
		f.offer = domain.NewFileHasher(domain.FileHashSHA256)
		if _, err := io.Copy(f.offer, io.NewSectionReader(f.part, 0, off)); err != nil {
			return fmt.Errorf("hash part %s: %w", f.id.Short(), err)
		}
	}
	if off < size || size == 0 {
		if err := f.part.Truncate(off); err != nil {
			return fmt.Errorf("truncate part %s: %w", f.id.Short(), err)
		}
	}
	f.offset, f.written = off, off
	f.prefix = f.hash.Sum()
	return nil
}

func (f *incomingFile) key() prefixKey { return prefixKey{f.id, f.index} }

func (f *incomingFile) SourceHash(sum [32]byte) { f.source, f.gotSrc = sum, true }

func (f *incomingFile) Offset() int64        { return f.offset }
func (f *incomingFile) PrefixHash() [32]byte { return f.prefix }

// Restart drops what the part held: the sender's first bytes differ.
func (f *incomingFile) Restart() error {
	if err := f.part.Truncate(0); err != nil {
		return fmt.Errorf("truncate part %s: %w", f.id.Short(), err)
	}
	f.hash = domain.NewFileHasher(f.hash.Alg())
	if f.offer != nil {
		f.offer = domain.NewFileHasher(domain.FileHashSHA256)
	}
	f.offset, f.written = 0, 0
	f.ticker.set(f.base)
	_, err := f.r.book.updateQuietly(context.Background(), f.id, func(t *domain.Transfer, now time.Time) error { return startAt(t, f.base, now) })
	return err
}

// Write appends to the part and the hash, refusing more bytes than offered.
func (f *incomingFile) Write(p []byte) (int, error) {
	if f.cancelled.Load() {
		return 0, errTransferCancelled
	}
	if int64(len(p)) > f.entry.Size-f.written {
		return 0, fmt.Errorf("%w: more bytes than the %d offered for %s", ports.ErrIntegrity, f.entry.Size, f.entry.Path)
	}
	// Hash while the part writes: the two cost about the same per byte and
	// this call is the receiving pipeline's slowest stage. A short write
	// leaves the hash ahead of the part; it is then never used: the
	// transfer fails (writeErr), and a hash state kept by a cancellation
	// beyond the part's size is not taken up again (begin rehashes).
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		f.hash.Write(p)
		if f.offer != nil {
			f.offer.Write(p)
		}
	}()
	n, err := f.part.Write(p)
	<-hashed
	f.written += int64(n)
	f.ticker.set(f.base + f.written)
	if err != nil {
		f.writeErr = fmt.Errorf("write part %s: %w", f.id.Short(), err)
		return n, f.writeErr
	}
	return n, nil
}

// Finish ends the file: on success it verifies the hash and commits the part.
func (f *incomingFile) Finish(streamErr error) error {
	f.ticker.close()
	f.r.mu.Lock()
	delete(f.r.active[f.id], f)
	if len(f.r.active[f.id]) == 0 {
		delete(f.r.active, f.id)
	}
	f.r.mu.Unlock()
	ctx := context.Background()
	book := f.r.book
	if f.writeErr != nil && !f.cancelled.Load() {
		// The bytes cannot be stored here: fail (both sides see why) and free
		// the space the part took, rather than resume into the same error.
		f.part.Close()
		_ = f.r.downloads.RemovePart(f.id, f.rel)
		reason := fmt.Sprintf("cannot write %s: %v", f.entry.Path, f.writeErr)
		_, _ = book.update(ctx, f.id, func(t *domain.Transfer, now time.Time) error { return t.Fail(reason, now) })
		slog.Warn("received file could not be written", "transfer", f.id.Short(), "file", f.index, "err", f.writeErr)
		return fmt.Errorf("%w: %s", ports.ErrTransferRefused, reason)
	}
	if streamErr != nil || f.cancelled.Load() {
		f.r.hashed.Keep(f.key(), f.hash.State())
		f.part.Close()
		t, _ := book.update(ctx, f.id, func(t *domain.Transfer, now time.Time) error {
			if t.State().Terminal() {
				return errTransferCancelled
			}
			if err := t.Progress(f.base+f.written, now); err != nil {
				slog.Debug("progress at interruption", "transfer", f.id.Short(), "err", err)
			}
			return t.Interrupt(now)
		})
		if t.State() == domain.TransferCancelled {
			_ = f.r.downloads.RemovePart(f.id, f.rel)
		}
		return nil
	}
	sum := f.hash.Sum()
	if f.last {
		_, _ = book.update(ctx, f.id, func(t *domain.Transfer, now time.Time) error { return t.Verify(now) })
	}
	offered := sum // the offer's hash is SHA-256: so is sum, or offer holds it
	if f.offer != nil {
		offered = f.offer.Sum()
	}
	if f.written != f.entry.Size || !f.gotSrc || sum != f.source || (f.entry.Hash != [32]byte{} && offered != f.entry.Hash) {
		f.part.Close()
		_ = f.r.downloads.RemovePart(f.id, f.rel)
		reason := fmt.Sprintf("%s: received %d of %d bytes, hash does not match the offer", f.entry.Path, f.written, f.entry.Size)
		_, _ = book.update(ctx, f.id, func(t *domain.Transfer, now time.Time) error { return t.Fail(reason, now) })
		slog.Warn("received file failed its integrity check", "transfer", f.id.Short(), "file", f.index)
		return fmt.Errorf("%w: %s", ports.ErrIntegrity, reason)
	}
	name, err := f.part.Commit()
	if err != nil {
		_, _ = book.update(ctx, f.id, func(t *domain.Transfer, now time.Time) error { return t.Interrupt(now) })
		return fmt.Errorf("commit %s of transfer %s: %w", f.entry.Path, f.id.Short(), err)
	}
	_, err = book.updateQuietly(ctx, f.id, func(t *domain.Transfer, now time.Time) error {
		saved := name
		if t.Manifest().IsFolder() {
			saved = t.Manifest().Name // its files land below it, each maybe renamed
		}
		if err := t.RecordSaved(saved); err != nil {
			return err
		}
		if f.last {
			return t.Complete(now)
		}
		return t.Progress(f.base+f.entry.Size, now)
	})
	if err != nil {
		return fmt.Errorf("record %s of transfer %s: %w", f.entry.Path, f.id.Short(), err)
	}
	slog.Info("file received", "transfer", f.id.Short(), "file", f.index, "bytes", f.entry.Size, "name_bytes", len(name))
	return nil
}

// doneFile answers a stream for a file that is committed already.
type doneFile struct{ entry domain.FileEntry }

func (d doneFile) Offset() int64        { return d.entry.Size }
func (d doneFile) PrefixHash() [32]byte { return d.entry.Hash }
func (d doneFile) SourceHash([32]byte)  {}
func (d doneFile) Committed() bool      { return true }
func (d doneFile) Restart() error {
	return fmt.Errorf("%w: %s was received already with another content", ports.ErrIntegrity, d.entry.Path)
}
func (d doneFile) Write(p []byte) (int, error) {
	return 0, fmt.Errorf("%w: %s was received already", ports.ErrIntegrity, d.entry.Path)
}
func (d doneFile) Finish(error) error { return nil }

// prefixKey names one file of one transfer.
type prefixKey struct {
	id    domain.TransferID
	index int
}
