package storage

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chatx/chatx/domain"
)

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func splitTime(t time.Time) (sec, nsec int64) { return t.Unix(), int64(t.Nanosecond()) }

func joinTime(sec, nsec int64) time.Time { return time.Unix(sec, nsec).UTC() }

func dirString(d domain.Direction) (string, error) {
	switch d {
	case domain.Outgoing, domain.Incoming:
		return d.String(), nil
	}
	return "", fmt.Errorf("unknown direction %d", int(d))
}

func parseDir(s string) (domain.Direction, error) {
	switch s {
	case "out":
		return domain.Outgoing, nil
	case "in":
		return domain.Incoming, nil
	}
	return 0, fmt.Errorf("unknown direction %q", s)
}

// messageRow is a message as the messages table holds it.
type messageRow struct {
	ID        []byte
	Dir       string
	Sender    string
	SenderKey string
	Recipient string
	PeerKey   string
	SentSec   int64
	SentNsec  int64
	Body      string
	State     string
}

func messageToRow(m domain.Message) (messageRow, error) {
	dir, err := dirString(m.Direction())
	if err != nil {
		return messageRow{}, err
	}
	if _, ok := messageStateNames[m.State()]; !ok {
		return messageRow{}, fmt.Errorf("unknown message state %d", int(m.State()))
	}
	if m.From().IsZero() || m.To().IsZero() {
		return messageRow{}, fmt.Errorf("%w: message without sender or recipient", domain.ErrInvalidUsername)
	}
	id := m.ID()
	sec, nsec := splitTime(m.SentAt())
	return messageRow{
		ID: id[:], Dir: dir,
		Sender: m.From().String(), SenderKey: m.From().Key(),
		Recipient: m.To().String(), PeerKey: m.Peer().Key(),
		SentSec: sec, SentNsec: nsec, Body: m.Body(), State: m.State().String(),
	}, nil
}

func (r messageRow) args() []any {
	return []any{r.ID, r.Dir, r.Sender, r.SenderKey, r.Recipient, r.PeerKey, r.SentSec, r.SentNsec, r.Body, r.State}
}

// scanMessage reads the columns of messageColumns.
func scanMessage(sc scanner) (domain.Message, error) {
	var r messageRow
	if err := sc.Scan(&r.ID, &r.Dir, &r.Sender, &r.Recipient, &r.SentSec, &r.SentNsec, &r.Body, &r.State); err != nil {
		return domain.Message{}, err
	}
	return r.toDomain()
}

func (r messageRow) toDomain() (domain.Message, error) {
	var id domain.MessageID
	if len(r.ID) != len(id) {
		return domain.Message{}, fmt.Errorf("stored message: id of %d bytes", len(r.ID))
	}
	copy(id[:], r.ID)
	from, err := domain.ParseUsername(r.Sender)
	if err != nil {
		return domain.Message{}, fmt.Errorf("stored message %s: sender: %w", id, err)
	}
	to, err := domain.ParseUsername(r.Recipient)
	if err != nil {
		return domain.Message{}, fmt.Errorf("stored message %s: recipient: %w", id, err)
	}
	dir, err := parseDir(r.Dir)
	if err != nil {
		return domain.Message{}, fmt.Errorf("stored message %s: %w", id, err)
	}
	state, err := domain.ParseMessageState(r.State)
	if err != nil {
		return domain.Message{}, fmt.Errorf("stored message %s: %w", id, err)
	}
	return domain.RestoreMessage(id, from, to, joinTime(r.SentSec, r.SentNsec), r.Body, dir, state), nil
}

// messageStateNames guards against writing a state the schema's CHECK
// would refuse with a less helpful error.
var messageStateNames = map[domain.MessageState]bool{
	domain.MessageQueued: true, domain.MessageSent: true, domain.MessageDelivered: true,
	domain.MessageRead: true, domain.MessageFailed: true, domain.MessageStored: true,
}

// contactColumns are the columns scanContact reads.
const contactColumns = "name, public_key, verified, pinned_sec, pinned_nsec, relation, nickname"

// contactRow is a contact as the contacts table holds it.
type contactRow struct {
	Name       string
	PublicKey  []byte
	Verified   bool
	PinnedSec  int64
	PinnedNsec int64
	Relation   string
	Nickname   string
}

func scanContact(sc scanner) (domain.Contact, error) {
	var r contactRow
	if err := sc.Scan(&r.Name, &r.PublicKey, &r.Verified, &r.PinnedSec, &r.PinnedNsec, &r.Relation, &r.Nickname); err != nil {
		return domain.Contact{}, err
	}
	return r.toDomain()
}

func (r contactRow) toDomain() (domain.Contact, error) {
	name, err := domain.ParseUsername(r.Name)
	if err != nil {
		return domain.Contact{}, fmt.Errorf("stored contact %q: %w", r.Name, err)
	}
	id, err := domain.NewIdentity(name, ed25519.PublicKey(r.PublicKey))
	if err != nil {
		return domain.Contact{}, fmt.Errorf("stored contact %s: %w", name, err)
	}
	rel, err := domain.ParseRelation(r.Relation)
	if err != nil {
		return domain.Contact{}, fmt.Errorf("stored contact %s: %w", name, err)
	}
	return domain.Contact{Identity: id, Verified: r.Verified, PinnedAt: joinTime(r.PinnedSec, r.PinnedNsec),
		Relation: rel, Nickname: r.Nickname}, nil
}

// transferRow is a transfer as the transfers table holds it.
type transferRow struct {
	ID          []byte
	Peer        string
	Dir         string
	State       string
	Done        int64
	Reason      string
	CreatedSec  int64
	CreatedNsec int64
	UpdatedSec  int64
	UpdatedNsec int64
	Source      string
	Manifest    string // JSON of manifestRow

	Rate         float64
	LastTickSec  int64
	LastTickNsec int64
	LastDone     int64
	RunStartSec  int64
	RunStartNsec int64
	RunDone      int64
	ActiveNsec   int64
	Moved        int64
	FilePath     string // "", "udp" or "tcp" (migration 6)
}

// manifestRow is the JSON form of a manifest in the transfers table.
type manifestRow struct {
	Name  string         `json:"name"`
	Files []fileEntryRow `json:"files"`
}

type fileEntryRow struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Hash string `json:"sha256"` // hex
}

func transferToRow(t domain.Transfer) (transferRow, error) {
	s := t.Snapshot()
	dir, err := dirString(s.Direction)
	if err != nil {
		return transferRow{}, err
	}
	if s.Peer.IsZero() {
		return transferRow{}, fmt.Errorf("%w: transfer without a peer", domain.ErrInvalidUsername)
	}
	if _, err := domain.ParseTransferState(s.State.String()); err != nil {
		return transferRow{}, err
	}
	mr := manifestRow{Name: s.Manifest.Name, Files: make([]fileEntryRow, len(s.Manifest.Files))}
	for i, f := range s.Manifest.Files {
		mr.Files[i] = fileEntryRow{Path: f.Path, Size: f.Size, Hash: hex.EncodeToString(f.Hash[:])}
	}
	manifest, err := json.Marshal(mr)
	if err != nil {
		return transferRow{}, fmt.Errorf("encode manifest: %w", err)
	}
	cs, cn := splitTime(s.CreatedAt)
	us, un := splitTime(s.UpdatedAt)
	ls, ln := splitOptionalTime(s.LastTick)
	rs, rn := splitOptionalTime(s.RunStart)
	return transferRow{
		ID: s.ID[:], Peer: s.Peer.String(), Dir: dir, State: s.State.String(), Done: s.Done,
		Reason: s.Reason, CreatedSec: cs, CreatedNsec: cn, UpdatedSec: us, UpdatedNsec: un,
		Source: s.Source, Manifest: string(manifest),
		Rate: s.Rate, LastTickSec: ls, LastTickNsec: ln, LastDone: s.LastDone,
		RunStartSec: rs, RunStartNsec: rn, RunDone: s.RunDone, ActiveNsec: int64(s.Active), Moved: s.Moved,
		FilePath: string(s.FilePath),
	}, nil
}

// splitOptionalTime is splitTime with the zero time stored as 0, 0 (the
// columns' default), so joinOptionalTime gives the zero time back.
func splitOptionalTime(t time.Time) (sec, nsec int64) {
	if t.IsZero() {
		return 0, 0
	}
	return splitTime(t)
}

func joinOptionalTime(sec, nsec int64) time.Time {
	if sec == 0 && nsec == 0 {
		return time.Time{}
	}
	return joinTime(sec, nsec)
}

func (r transferRow) args() []any {
	return []any{r.ID, r.Peer, r.Dir, r.State, r.Done, r.Reason, r.CreatedSec, r.CreatedNsec,
		r.UpdatedSec, r.UpdatedNsec, r.Source, r.Manifest,
		r.Rate, r.LastTickSec, r.LastTickNsec, r.LastDone, r.RunStartSec, r.RunStartNsec, r.RunDone, r.ActiveNsec, r.Moved, r.FilePath}
}

// scanTransfer reads the columns of transferColumns.
func scanTransfer(sc scanner) (domain.Transfer, error) {
	var r transferRow
	if err := sc.Scan(&r.ID, &r.Peer, &r.Dir, &r.State, &r.Done, &r.Reason, &r.CreatedSec, &r.CreatedNsec,
		&r.UpdatedSec, &r.UpdatedNsec, &r.Source, &r.Manifest,
		&r.Rate, &r.LastTickSec, &r.LastTickNsec, &r.LastDone, &r.RunStartSec, &r.RunStartNsec, &r.RunDone,
		&r.ActiveNsec, &r.Moved, &r.FilePath); err != nil {
		return domain.Transfer{}, err
	}
	return r.toDomain()
}

func (r transferRow) toDomain() (domain.Transfer, error) {
	var id domain.TransferID
	if len(r.ID) != len(id) {
		return domain.Transfer{}, fmt.Errorf("stored transfer: id of %d bytes", len(r.ID))
	}
	copy(id[:], r.ID)
	peer, err := domain.ParseUsername(r.Peer)
	if err != nil {
		return domain.Transfer{}, fmt.Errorf("stored transfer %s: peer: %w", id.Short(), err)
	}
	dir, err := parseDir(r.Dir)
	if err != nil {
		return domain.Transfer{}, fmt.Errorf("stored transfer %s: %w", id.Short(), err)
	}
	state, err := domain.ParseTransferState(r.State)
	if err != nil {
		return domain.Transfer{}, fmt.Errorf("stored transfer %s: %w", id.Short(), err)
	}
	var mr manifestRow
	if err := json.Unmarshal([]byte(r.Manifest), &mr); err != nil {
		return domain.Transfer{}, fmt.Errorf("stored transfer %s: manifest: %w", id.Short(), err)
	}
	m := domain.Manifest{Name: mr.Name}
	if len(mr.Files) > 0 {
		m.Files = make([]domain.FileEntry, len(mr.Files))
	}
	for i, f := range mr.Files {
		h, err := hex.DecodeString(f.Hash)
		if err != nil || len(h) != 32 {
			return domain.Transfer{}, fmt.Errorf("stored transfer %s: file %d: bad hash", id.Short(), i)
		}
		m.Files[i] = domain.FileEntry{Path: f.Path, Size: f.Size}
		copy(m.Files[i].Hash[:], h)
	}
	fp := domain.FilePath(r.FilePath)
	if fp != domain.FilePathNone && fp != domain.FilePathUDP && fp != domain.FilePathTCP {
		return domain.Transfer{}, fmt.Errorf("stored transfer %s: file path %q", id.Short(), r.FilePath)
	}
	return domain.RestoreTransfer(domain.TransferSnapshot{
		ID: id, Peer: peer, Direction: dir, Manifest: m, State: state, Done: r.Done, Reason: r.Reason,
		CreatedAt: joinTime(r.CreatedSec, r.CreatedNsec), UpdatedAt: joinTime(r.UpdatedSec, r.UpdatedNsec),
		Source: r.Source,
		Rate:   r.Rate, LastTick: joinOptionalTime(r.LastTickSec, r.LastTickNsec), LastDone: r.LastDone,
		RunStart: joinOptionalTime(r.RunStartSec, r.RunStartNsec), RunDone: r.RunDone,
		Active: time.Duration(r.ActiveNsec), Moved: r.Moved, FilePath: fp,
	}), nil
}
