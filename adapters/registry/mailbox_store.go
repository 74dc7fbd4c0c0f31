package registry

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Files of the mailbox under the data directory.
const (
	mailboxFile = "mailbox.jsonl"
	prekeysFile = "prekeys.jsonl"
)

// maxMailLine bounds one line of the mailbox log: a MaxMailSize blob in
// base64 and its fields.
const maxMailLine = 4*ports.MaxMailSize/3 + 4096

// FileMailboxStore keeps parked mail in an append-only JSON-lines log
// under the data directory — a "put" line per deposit and a "del" line per
// deletion — fsynced before Put or Delete returns (concurrent callers share
// one fsync, like FileAccountStore), and in memory for reads. Opening replays the log (a torn last line is cut off) and
// rewrites it with only the live mail when most of it is garbage; so does
// Expire. The blobs are sealed by the senders: the file holds ciphertext,
// recipients' names, sizes and times, never content.
type FileMailboxStore struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	boxes   map[string][]ports.Mail // by recipient Username.Key, oldest first
	lines   int                     // lines in the log
	live    int                     // mails held
	failed  error
	closed  bool
	dirSync func() error
	written uint64 // sequence number of the last line appended

	// syncMu: one fsync (or compaction) at a time; taken before mu.
	syncMu sync.Mutex
	synced atomic.Uint64 // every line up to this sequence number is on disk
}

var _ ports.MailboxStore = (*FileMailboxStore)(nil)

type mailRecord struct {
	Op        string    `json:"op"` // "put" or "del"
	ID        string    `json:"id,omitempty"`
	IDs       []string  `json:"ids,omitempty"`
	To        string    `json:"to"`
	Blob      string    `json:"blob,omitempty"` // standard base64
	Deposited time.Time `json:"deposited,omitzero"`
	Expires   time.Time `json:"expires,omitzero"`
}

// NewFileMailboxStore opens (creating) the mailbox log in dir. The cleanup
// closes it.
func NewFileMailboxStore(dir DataDir) (*FileMailboxStore, func(), error) {
	if dir == "" {
		return nil, nil, errors.New("mailbox store: no data directory")
	}
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return nil, nil, fmt.Errorf("mailbox store: %w", err)
	}
	s := &FileMailboxStore{path: filepath.Join(string(dir), mailboxFile), boxes: make(map[string][]ports.Mail),
		dirSync: func() error { return syncDir(string(dir)) }}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("mailbox store: %w", err)
	}
	s.f = f
	if err := s.load(time.Now()); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("mailbox store %s: %w", s.path, err)
	}
	if s.lines > 2*s.live+64 {
		if err := s.compactLocked(); err != nil {
			s.f.Close()
			return nil, nil, fmt.Errorf("mailbox store %s: %w", s.path, err)
		}
	}
	return s, func() { _ = s.Close() }, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// load replays the log; mail already expired at now is dropped.
func (s *FileMailboxStore) load(now time.Time) error {
	r := bufio.NewReaderSize(s.f, 64<<10)
	var good int64
	for {
		line, err := readLogLine(r, maxMailLine)
		if errors.Is(err, io.EOF) {
			break // a partial last line (no newline) is a torn write
		}
		if err != nil {
			return fmt.Errorf("line at offset %d: %w", good, err)
		}
		var rec mailRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("line at offset %d: %w", good, err)
		}
		if err := s.apply(rec, now); err != nil {
			return fmt.Errorf("line at offset %d: %w", good, err)
		}
		s.lines++
		good += int64(len(line))
	}
	if err := s.f.Truncate(good); err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	_, err := s.f.Seek(good, io.SeekStart)
	return err
}

// readLogLine reads one line with its newline, at most max bytes; io.EOF
// for a last line without one.
func readLogLine(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		part, err := r.ReadSlice('\n')
		buf = append(buf, part...)
		if len(buf) > max {
			return nil, fmt.Errorf("longer than %d bytes", max)
		}
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}

func parseMailID(s string) (ports.MailID, error) {
	var id ports.MailID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("mail id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

func (s *FileMailboxStore) apply(rec mailRecord, now time.Time) error {
	to, err := domain.ParseUsername(rec.To)
	if err != nil {
		return err
	}
	switch rec.Op {
	case "put":
		id, err := parseMailID(rec.ID)
		if err != nil {
			return err
		}
		blob, err := base64.StdEncoding.DecodeString(rec.Blob)
		if err != nil {
			return fmt.Errorf("blob: %w", err)
		}
		if rec.Expires.After(now) {
			s.insertLocked(ports.Mail{ID: id, To: to, Blob: blob, Deposited: rec.Deposited, Expires: rec.Expires})
		}
	case "del":
		ids := make([]ports.MailID, 0, len(rec.IDs))
		for _, t := range rec.IDs {
			id, err := parseMailID(t)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		s.removeLocked(to, func(m ports.Mail) bool { return slices.Contains(ids, m.ID) })
	default:
		return fmt.Errorf("unknown op %q", rec.Op)
	}
	return nil
}

func (s *FileMailboxStore) insertLocked(m ports.Mail) {
	box := append(s.boxes[m.To.Key()], m)
	// Deposits arrive in time order; a clock step back keeps the order sorted.
	if n := len(box); n > 1 && box[n-1].Deposited.Before(box[n-2].Deposited) {
		sort.SliceStable(box, func(i, j int) bool { return box[i].Deposited.Before(box[j].Deposited) })
	}
	s.boxes[m.To.Key()] = box
	s.live++
}

func (s *FileMailboxStore) removeLocked(to domain.Username, drop func(ports.Mail) bool) int {
	box := s.boxes[to.Key()]
	before := len(box)
	box = slices.DeleteFunc(box, drop)
	if len(box) == 0 {
		delete(s.boxes, to.Key())
	} else {
		s.boxes[to.Key()] = box
	}
	s.live -= before - len(box)
	return before - len(box)
}

// appendLocked writes rec (not yet durable: see durable) and returns its
// sequence number. Callers hold s.mu.
func (s *FileMailboxStore) appendLocked(rec mailRecord) (uint64, error) {
	switch {
	case s.closed:
		return 0, os.ErrClosed
	case s.failed != nil:
		return 0, fmt.Errorf("mailbox log unusable after an earlier error: %w", s.failed)
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	if _, err := s.f.Write(append(line, '\n')); err != nil {
		s.failed = err
		return 0, fmt.Errorf("write mailbox log: %w", err)
	}
	s.lines++
	s.written++
	return s.written, nil
}

// durable returns once line seq is on disk; whoever syncs first syncs
// every line written so far.
func (s *FileMailboxStore) durable(seq uint64) error {
	if s.synced.Load() >= seq {
		return nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced.Load() >= seq {
		return nil
	}
	s.mu.Lock()
	upTo, failed, f := s.written, s.failed, s.f
	s.mu.Unlock()
	if failed != nil {
		return fmt.Errorf("sync mailbox log: %w", failed)
	}
	if err := f.Sync(); err != nil {
		s.mu.Lock()
		s.failed = err
		s.mu.Unlock()
		return fmt.Errorf("sync mailbox log: %w", err)
	}
	s.synced.Store(upTo)
	return nil
}

// Put parks m durably unless it would exceed q.
func (s *FileMailboxStore) Put(ctx context.Context, m ports.Mail, q ports.MailQuota) error {
	s.mu.Lock()
	if err := q.Admits(s.boxes[m.To.Key()], m); err != nil {
		s.mu.Unlock()
		return err
	}
	rec := mailRecord{Op: "put", ID: hex.EncodeToString(m.ID[:]), To: m.To.String(),
		Blob: base64.StdEncoding.EncodeToString(m.Blob), Deposited: m.Deposited.UTC(), Expires: m.Expires.UTC()}
	seq, err := s.appendLocked(rec)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("put mail for %s: %w", m.To, err)
	}
	m.Blob = slices.Clone(m.Blob)
	s.insertLocked(m)
	s.mu.Unlock()
	if err := s.durable(seq); err != nil {
		return fmt.Errorf("put mail for %s: %w", m.To, err)
	}
	return nil
}

// List returns to's unexpired mail, oldest first.
func (s *FileMailboxStore) List(ctx context.Context, to domain.Username, now time.Time, limit int) ([]ports.Mail, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ports.Unexpired(s.boxes[to.Key()], now, limit), nil
}

// Delete removes to's mail with the given IDs, durably.
func (s *FileMailboxStore) Delete(ctx context.Context, to domain.Username, ids []ports.MailID) error {
	s.mu.Lock()
	var hit []string
	for _, m := range s.boxes[to.Key()] {
		if slices.Contains(ids, m.ID) {
			hit = append(hit, hex.EncodeToString(m.ID[:]))
		}
	}
	if len(hit) == 0 {
		s.mu.Unlock()
		return nil
	}
	seq, err := s.appendLocked(mailRecord{Op: "del", To: to.String(), IDs: hit})
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("delete mail of %s: %w", to, err)
	}
	s.removeLocked(to, func(m ports.Mail) bool { return slices.Contains(ids, m.ID) })
	s.mu.Unlock()
	if err := s.durable(seq); err != nil {
		return fmt.Errorf("delete mail of %s: %w", to, err)
	}
	return nil
}

// Expire drops mail expired at now and compacts the log when most of it
// is garbage (expired mail is not written as deletions: the log is
// rewritten without it).
func (s *FileMailboxStore) Expire(ctx context.Context, now time.Time) (int, error) {
	s.syncMu.Lock() // the compaction replaces the file a sync would use
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, box := range s.boxes {
		if len(box) > 0 {
			n += s.removeLocked(box[0].To, func(m ports.Mail) bool { return !m.Expires.After(now) })
		}
	}
	if n > 0 || s.lines > 2*s.live+64 {
		if err := s.compactLocked(); err != nil {
			return n, fmt.Errorf("compact mailbox log: %w", err)
		}
	}
	return n, nil
}

// compactLocked rewrites the log with the live mail only: a new file,
// fsynced, renamed over the old one, the directory fsynced.
func (s *FileMailboxStore) compactLocked() error {
	if s.closed {
		return os.ErrClosed
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	lines := 0
	for _, box := range s.boxes {
		for _, m := range box {
			line, err := json.Marshal(mailRecord{Op: "put", ID: hex.EncodeToString(m.ID[:]), To: m.To.String(),
				Blob: base64.StdEncoding.EncodeToString(m.Blob), Deposited: m.Deposited.UTC(), Expires: m.Expires.UTC()})
			if err != nil {
				f.Close()
				return err
			}
			w.Write(append(line, '\n'))
			lines++
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		f.Close()
		return err
	}
	if err := s.dirSync(); err != nil {
		f.Close()
		return err
	}
	s.f.Close()
	s.f, s.lines, s.failed = f, lines, nil
	s.synced.Store(s.written) // everything held is in the new, synced file
	return nil
}

// Close closes the log.
func (s *FileMailboxStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}

// FilePrekeyStore keeps each user's current mailbox key in an append-only
// JSON-lines log (the last line of a name wins), fsynced before PutPrekey
// returns; opening rewrites it with one line per name.
type FilePrekeyStore struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	keys   map[string]ports.SignedPrekey
	closed bool
}

var _ ports.PrekeyStore = (*FilePrekeyStore)(nil)

type prekeyRecord struct {
	Name      string    `json:"name"`
	KeyID     uint32    `json:"key_id"`
	Public    string    `json:"public"`
	Suite     string    `json:"suite"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	Signature string    `json:"signature"`
}

func toPrekeyRecord(k ports.SignedPrekey) prekeyRecord {
	return prekeyRecord{Name: k.Name.String(), KeyID: k.KeyID, Public: base64.StdEncoding.EncodeToString(k.Public),
		Suite: k.Suite, Created: k.Created.UTC(), Expires: k.Expires.UTC(), Signature: base64.StdEncoding.EncodeToString(k.Signature)}
}

func (r prekeyRecord) prekey() (ports.SignedPrekey, error) {
	name, err := domain.ParseUsername(r.Name)
	if err != nil {
		return ports.SignedPrekey{}, err
	}
	pub, err := base64.StdEncoding.DecodeString(r.Public)
	if err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("public: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("signature: %w", err)
	}
	return ports.SignedPrekey{Name: name, KeyID: r.KeyID, Public: pub, Suite: r.Suite, Created: r.Created, Expires: r.Expires, Signature: sig}, nil
}

// NewFilePrekeyStore opens (creating) the prekey log in dir.
func NewFilePrekeyStore(dir DataDir) (*FilePrekeyStore, func(), error) {
	if dir == "" {
		return nil, nil, errors.New("prekey store: no data directory")
	}
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return nil, nil, fmt.Errorf("prekey store: %w", err)
	}
	s := &FilePrekeyStore{path: filepath.Join(string(dir), prekeysFile), keys: make(map[string]ports.SignedPrekey)}
	if err := s.load(); err != nil {
		return nil, nil, fmt.Errorf("prekey store %s: %w", s.path, err)
	}
	if err := s.rewrite(string(dir)); err != nil {
		return nil, nil, fmt.Errorf("prekey store %s: %w", s.path, err)
	}
	return s, func() { _ = s.Close() }, nil
}

func (s *FilePrekeyStore) load() error {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := readLogLine(r, 4*ports.MaxPrekeySize)
		if errors.Is(err, io.EOF) {
			return nil // a torn last line is dropped by the rewrite
		}
		if err != nil {
			return err
		}
		var rec prekeyRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			return err
		}
		k, err := rec.prekey()
		if err != nil {
			return err
		}
		s.keys[k.Name.Key()] = k
	}
}

// rewrite writes one line per name to a new file and renames it over the
// log, which stays open for appending.
func (s *FilePrekeyStore) rewrite(dir string) error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, k := range s.keys {
		line, _ := json.Marshal(toPrekeyRecord(k))
		w.Write(append(line, '\n'))
	}
	if err := w.Flush(); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		return err
	}
	s.f = f
	return nil
}

// PutPrekey stores k as its name's current key, durably.
func (s *FilePrekeyStore) PutPrekey(ctx context.Context, k ports.SignedPrekey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("put prekey of %s: %w", k.Name, os.ErrClosed)
	}
	line, err := json.Marshal(toPrekeyRecord(k))
	if err != nil {
		return err
	}
	if _, err := s.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("put prekey of %s: %w", k.Name, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("put prekey of %s: %w", k.Name, err)
	}
	k.Public, k.Signature = slices.Clone(k.Public), slices.Clone(k.Signature)
	s.keys[k.Name.Key()] = k
	return nil
}

// GetPrekey returns name's current key.
func (s *FilePrekeyStore) GetPrekey(ctx context.Context, name domain.Username) (ports.SignedPrekey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[name.Key()]
	if !ok {
		return ports.SignedPrekey{}, fmt.Errorf("prekey of %s: %w", name, domain.ErrNotFound)
	}
	k.Public, k.Signature = slices.Clone(k.Public), slices.Clone(k.Signature)
	return k, nil
}

// Close closes the log.
func (s *FilePrekeyStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}
