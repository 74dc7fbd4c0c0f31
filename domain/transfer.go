package domain

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// Transfer limits.
const (
	MaxTransferFiles = 10000   // files in one offer (a folder)
	MaxFileSize      = 1 << 44 // 16 TiB per file
)

// TransferID is a random 128-bit identifier chosen by the sender.
type TransferID [16]byte

// NewTransferID draws a random ID.
func NewTransferID() TransferID {
	var id TransferID
	if _, err := rand.Read(id[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return id
}

// ParseTransferID reads the hex form of an ID.
func ParseTransferID(s string) (TransferID, error) {
	var id TransferID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: transfer id %q", ErrNotFound, s)
	}
	copy(id[:], b)
	return id, nil
}

func (id TransferID) String() string { return hex.EncodeToString(id[:]) }

// Short is the first eight hex digits, for people.
func (id TransferID) Short() string { return id.String()[:8] }

// FileEntry is one file of an offer: its path relative to the offer's root
// (slash-separated, every part a safe name), its size and a hash: all
// zeros (the file is hashed while it is sent), or its chunked SHA-256
// (FileHasher with FileHashSHA256) whatever chunk hash its stream uses.
type FileEntry struct {
	Path string
	Size int64
	Hash [32]byte
}

// Manifest is what an offer carries: a display name (the file's or the
// folder's) and the files. A single file is a manifest of one entry whose
// Path equals Name.
type Manifest struct {
	Name  string
	Files []FileEntry
}

// NewManifest checks a manifest made from peer input, reducing names to safe
// ones. It fails on unsafe relative paths rather than guessing.
func NewManifest(name string, files []FileEntry) (Manifest, error) {
	if len(files) == 0 {
		return Manifest{}, fmt.Errorf("%w: an offer needs at least one file", ErrUnsafePath)
	}
	if len(files) > MaxTransferFiles {
		return Manifest{}, fmt.Errorf("%w: %d files in one offer (at most %d)", ErrTooLarge, len(files), MaxTransferFiles)
	}
	m := Manifest{Name: SafeFileName(name), Files: make([]FileEntry, len(files))}
	seen := make(map[string]bool, len(files))
	for i, f := range files {
		p, err := SafeRelativePath(f.Path)
		if err != nil {
			return Manifest{}, err
		}
		if f.Size < 0 || f.Size > MaxFileSize {
			return Manifest{}, fmt.Errorf("%w: file size %d", ErrTooLarge, f.Size)
		}
		if seen[p] {
			return Manifest{}, fmt.Errorf("%w: %q appears twice", ErrUnsafePath, p)
		}
		seen[p] = true
		m.Files[i] = FileEntry{Path: p, Size: f.Size, Hash: f.Hash}
	}
	return m, nil
}

// TotalSize is the sum of the files' sizes.
func (m Manifest) TotalSize() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// IsFolder reports whether the offer is a folder rather than one file.
func (m Manifest) IsFolder() bool { return len(m.Files) != 1 || m.Files[0].Path != m.Name }

// TransferState is where a transfer is in its life.
type TransferState int

// Transfer states.
const (
	TransferOffered TransferState = iota + 1
	TransferAccepted
	TransferDeclined
	TransferInProgress
	TransferInterrupted
	TransferVerifying
	TransferCompleted
	TransferCancelled
	TransferFailed
)

var transferStateNames = map[TransferState]string{
	TransferOffered: "offered", TransferAccepted: "accepted", TransferDeclined: "declined",
	TransferInProgress: "in_progress", TransferInterrupted: "interrupted", TransferVerifying: "verifying",
	TransferCompleted: "completed", TransferCancelled: "cancelled", TransferFailed: "failed",
}

func (s TransferState) String() string {
	if n, ok := transferStateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("TransferState(%d)", int(s))
}

// ParseTransferState reads the String form of a state.
func ParseTransferState(s string) (TransferState, error) {
	for k, v := range transferStateNames {
		if v == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown transfer state %q", s)
}

// Terminal reports whether no further move is possible.
func (s TransferState) Terminal() bool {
	return s == TransferDeclined || s == TransferCompleted || s == TransferCancelled || s == TransferFailed
}

var transferMoves = map[TransferState][]TransferState{
	TransferOffered:     {TransferAccepted, TransferDeclined, TransferCancelled, TransferFailed},
	TransferAccepted:    {TransferInProgress, TransferInterrupted, TransferCancelled, TransferFailed},
	TransferInProgress:  {TransferInterrupted, TransferVerifying, TransferCancelled, TransferFailed},
	TransferInterrupted: {TransferInProgress, TransferCancelled, TransferFailed},
	TransferVerifying:   {TransferCompleted, TransferFailed, TransferInterrupted},
}

// CanMove reports whether a transfer in state s may move to next.
func (s TransferState) CanMove(next TransferState) bool {
	for _, m := range transferMoves[s] {
		if m == next {
			return true
		}
	}
	return false
}

// Transfer is a file or folder offered by one user to another, and how far it got.
type Transfer struct {
	id        TransferID
	peer      Username
	dir       Direction
	manifest  Manifest
	state     TransferState
	done      int64
	rate      float64 // bytes per second, smoothed
	reason    string  // why it failed, for people
	createdAt time.Time
	updatedAt time.Time
	lastTick  time.Time // when rate was last updated
	lastDone  int64     // done at lastTick
	runStart  time.Time // when the current run of bytes (Start or Resume) began; zero when not moving
	runDone   int64     // done at runStart
	active    time.Duration
	moved     int64 // bytes moved in earlier runs, for the average
	// source is the local path of the files: for an outgoing transfer the
	// path it reads from (kept so it can resume after a restart), for an
	// incoming one where it was saved, relative to the downloads folder.
	source string
	// filePath is the path the last file of an outgoing transfer rode
	// (FilePathNone until one was chosen).
	filePath FilePath
}

// NewTransfer makes a transfer in the offered state.
func NewTransfer(id TransferID, peer Username, dir Direction, m Manifest, now time.Time) (Transfer, error) {
	if peer.IsZero() {
		return Transfer{}, fmt.Errorf("%w: transfer needs a peer", ErrInvalidUsername)
	}
	if len(m.Files) == 0 {
		return Transfer{}, fmt.Errorf("%w: empty manifest", ErrUnsafePath)
	}
	return Transfer{id: id, peer: peer, dir: dir, manifest: m, state: TransferOffered, createdAt: now, updatedAt: now}, nil
}

// TransferSnapshot is the stored form of a transfer, for storage adapters.
type TransferSnapshot struct {
	ID        TransferID
	Peer      Username
	Direction Direction
	Manifest  Manifest
	State     TransferState
	Done      int64
	Reason    string
	CreatedAt time.Time
	UpdatedAt time.Time
	Source    string

	// The rate and the average are computed from these: a store that
	// drops them makes every reload restart the rate from nothing.
	Rate     float64       // smoothed bytes per second
	LastTick time.Time     // when Rate was last updated
	LastDone int64         // Done at LastTick
	RunStart time.Time     // when the current run began; zero when bytes are not moving
	RunDone  int64         // Done at RunStart
	Active   time.Duration // time spent moving bytes in earlier runs
	Moved    int64         // bytes moved in earlier runs

	FilePath FilePath // the path the last file rode ("" when none yet)
}

// Snapshot returns the stored form.
func (t Transfer) Snapshot() TransferSnapshot {
	return TransferSnapshot{ID: t.id, Peer: t.peer, Direction: t.dir, Manifest: t.manifest, State: t.state,
		Done: t.done, Reason: t.reason, CreatedAt: t.createdAt, UpdatedAt: t.updatedAt, Source: t.source,
		Rate: t.rate, LastTick: t.lastTick, LastDone: t.lastDone, RunStart: t.runStart, RunDone: t.runDone,
		Active: t.active, Moved: t.moved, FilePath: t.filePath}
}

// RestoreTransfer rebuilds a transfer from its stored form.
func RestoreTransfer(s TransferSnapshot) Transfer {
	return Transfer{id: s.ID, peer: s.Peer, dir: s.Direction, manifest: s.Manifest, state: s.State,
		done: s.Done, reason: s.Reason, createdAt: s.CreatedAt, updatedAt: s.UpdatedAt, source: s.Source,
		rate: s.Rate, lastTick: s.LastTick, lastDone: s.LastDone, runStart: s.RunStart, runDone: s.RunDone,
		active: s.Active, moved: s.Moved, filePath: s.FilePath}
}

func (t Transfer) ID() TransferID       { return t.id }
func (t Transfer) Peer() Username       { return t.peer }
func (t Transfer) Direction() Direction { return t.dir }
func (t Transfer) Manifest() Manifest   { return t.manifest }
func (t Transfer) State() TransferState { return t.state }
func (t Transfer) Done() int64          { return t.done }
func (t Transfer) Total() int64         { return t.manifest.TotalSize() }
func (t Transfer) Rate() float64        { return t.rate }

// Reason says, for people, why a transfer failed, was declined or was
// cancelled (and by whom); "" when nothing was said.
func (t Transfer) Reason() string       { return t.reason }
func (t Transfer) CreatedAt() time.Time { return t.createdAt }
func (t Transfer) UpdatedAt() time.Time { return t.updatedAt }
func (t Transfer) Source() string       { return t.source }

// FilePath is the path the transfer's bytes ride (or rode last): "udp",
// "tcp", or FilePathNone before a file was sent.
func (t Transfer) FilePath() FilePath { return t.filePath }

// WithFilePath records the path chosen for the file being sent.
func (t Transfer) WithFilePath(p FilePath) Transfer { t.filePath = p; return t }

// WithSource records the local path an outgoing transfer reads from.
func (t Transfer) WithSource(path string) Transfer { t.source = path; return t }

// SavedAs is where an incoming transfer was saved, relative to the
// downloads folder and slash-separated: the name its file got (which may be
// "name (1).ext" when the name was taken), or its folder's name; "" until
// its first file is saved, and always "" for an outgoing transfer.
func (t Transfer) SavedAs() string {
	if t.dir != Incoming {
		return ""
	}
	return t.source
}

// RecordSaved records the name, relative to the downloads folder, under
// which an incoming transfer was saved (see SavedAs).
func (t *Transfer) RecordSaved(rel string) error {
	if t.dir != Incoming {
		return fmt.Errorf("transfer %s is outgoing: it is not saved here", t.id.Short())
	}
	t.source = rel
	return nil
}

func (t Transfer) IsZero() bool { return t.id == TransferID{} }

// ETA estimates the time left at the current rate; zero when unknown.
func (t Transfer) ETA() time.Duration {
	if t.rate <= 0 || t.done >= t.Total() {
		return 0
	}
	secs := float64(t.Total()-t.done) / t.rate
	if secs > maxETA.Seconds() {
		return maxETA
	}
	return time.Duration(secs * float64(time.Second))
}

// maxETA caps an estimate: beyond it a number says nothing to a person.
const maxETA = 100 * 24 * time.Hour

// Elapsed is the time bytes have been moving, over every run (a resume after
// an interruption starts a new run; the time in between does not count).
// While a run goes on, it counts up to the last progress.
func (t Transfer) Elapsed() time.Duration {
	d := t.active
	if !t.runStart.IsZero() && t.updatedAt.After(t.runStart) {
		d += t.updatedAt.Sub(t.runStart)
	}
	return d
}

// AverageRate is the bytes moved per second of Elapsed (bytes that were
// already at the receiver on a resume do not count); zero when unknown.
func (t Transfer) AverageRate() float64 {
	moved := t.moved
	if !t.runStart.IsZero() {
		moved += t.done - t.runDone
	}
	el := t.Elapsed()
	if el <= 0 || moved <= 0 {
		return 0
	}
	return float64(moved) / el.Seconds()
}

// endRun folds the current run into the totals of Elapsed and AverageRate.
func (t *Transfer) endRun(now time.Time) {
	if t.runStart.IsZero() {
		return
	}
	if now.After(t.runStart) {
		t.active += now.Sub(t.runStart)
	}
	if t.done > t.runDone {
		t.moved += t.done - t.runDone
	}
	t.runStart, t.runDone = time.Time{}, 0
}

func (t *Transfer) move(next TransferState, now time.Time) error {
	if !t.state.CanMove(next) {
		return &TransitionError{What: "transfer " + t.id.Short(), From: t.state.String(), To: next.String()}
	}
	t.state = next
	t.updatedAt = now
	return nil
}

// Accept records the receiver's consent.
func (t *Transfer) Accept(now time.Time) error { return t.move(TransferAccepted, now) }

// Decline records the receiver's refusal.
func (t *Transfer) Decline(now time.Time) error { return t.DeclineBecause("", now) }

// DeclineBecause records the receiver's refusal and why, for people ("too
// large: …"; "" when the receiver just said no).
func (t *Transfer) DeclineBecause(reason string, now time.Time) error {
	if err := t.move(TransferDeclined, now); err != nil {
		return err
	}
	t.reason = reason
	return nil
}

// Start begins (or resumes) moving bytes from offset done (bytes already at
// the receiver, checked by the transport).
func (t *Transfer) Start(done int64, now time.Time) error {
	if done < 0 || done > t.Total() {
		return fmt.Errorf("transfer %s: resume offset %d outside 0..%d", t.id.Short(), done, t.Total())
	}
	if err := t.move(TransferInProgress, now); err != nil {
		return err
	}
	t.endRun(now)
	t.done, t.lastDone, t.lastTick, t.rate = done, done, now, 0
	t.runStart, t.runDone = now, done
	return nil
}

// Resume is Start after an interruption.
func (t *Transfer) Resume(done int64, now time.Time) error {
	if t.state != TransferInterrupted {
		return &TransitionError{What: "transfer " + t.id.Short(), From: t.state.String(), To: "resumed"}
	}
	return t.Start(done, now)
}

// Progress records that done bytes have arrived in total and updates the
// smoothed rate.
func (t *Transfer) Progress(done int64, now time.Time) error {
	if t.state != TransferInProgress {
		return &TransitionError{What: "transfer " + t.id.Short(), From: t.state.String(), To: "progress"}
	}
	if done < t.done || done > t.Total() {
		return fmt.Errorf("transfer %s: progress %d outside %d..%d", t.id.Short(), done, t.done, t.Total())
	}
	if t.lastTick.IsZero() {
		// Stored by a version that kept no tick: start measuring here
		// rather than from the zero time.
		t.lastTick, t.lastDone = now, done
	}
	if dt := now.Sub(t.lastTick); dt >= 100*time.Millisecond {
		inst := float64(done-t.lastDone) / dt.Seconds()
		if t.rate == 0 {
			t.rate = inst
		} else {
			t.rate = 0.7*t.rate + 0.3*inst
		}
		t.lastTick, t.lastDone = now, done
	}
	t.done = done
	t.updatedAt = now
	return nil
}

// Interrupt records a lost link or a crash; the transfer can resume.
func (t *Transfer) Interrupt(now time.Time) error {
	if t.state == TransferInterrupted {
		return nil
	}
	if err := t.move(TransferInterrupted, now); err != nil {
		return err
	}
	t.endRun(now)
	t.rate = 0
	return nil
}

// Verify records that every byte arrived and the hash is being checked.
func (t *Transfer) Verify(now time.Time) error {
	if err := t.move(TransferVerifying, now); err != nil {
		return err
	}
	t.done = t.Total()
	t.endRun(now)
	return nil
}

// Complete records that the hash matched and the files have their final names.
func (t *Transfer) Complete(now time.Time) error {
	if err := t.move(TransferCompleted, now); err != nil {
		return err
	}
	t.done, t.rate = t.Total(), 0
	t.endRun(now)
	return nil
}

// Cancel records that either side called the transfer off.
func (t *Transfer) Cancel(now time.Time) error { return t.CancelBecause("", now) }

// CancelBecause is Cancel with who called it off and why, for people
// ("cancelled by bob").
func (t *Transfer) CancelBecause(reason string, now time.Time) error {
	if err := t.move(TransferCancelled, now); err != nil {
		return err
	}
	t.reason = reason
	t.endRun(now)
	t.rate = 0
	return nil
}

// Fail records a reason the transfer cannot go on.
func (t *Transfer) Fail(reason string, now time.Time) error {
	if err := t.move(TransferFailed, now); err != nil {
		return err
	}
	t.reason = reason
	t.endRun(now)
	t.rate = 0
	return nil
}
