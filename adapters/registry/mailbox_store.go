package registry

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
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
// one fsync: appendLog), and in memory for reads. Opening replays the log
// (a torn last line is cut off) and rewrites it with only the live mail
// when most of it is garbage; so does Expire. The blobs are sealed by the
// senders: the file holds ciphertext, recipients' names, sizes and times,
// never content.
type FileMailboxStore struct {
	mu    sync.Mutex // taken before the log's
	log   *appendLog
	boxes map[string][]ports.Mail // by recipient Username.Key, oldest first
	lines int                     // lines in the log
	live  int                     // mails held
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

func putRecord(m ports.Mail) mailRecord {
	return mailRecord{Op: "put", ID: hex.EncodeToString(m.ID[:]), To: m.To.String(),
		Blob: base64.StdEncoding.EncodeToString(m.Blob), Deposited: m.Deposited.UTC(), Expires: m.Expires.UTC()}
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
	s := &FileMailboxStore{boxes: make(map[string][]ports.Mail)}
	now := time.Now() // mail already expired at open is dropped
	log, lines, err := openAppendLog(filepath.Join(string(dir), mailboxFile), "mailbox log", maxMailLine,
		func(line []byte) error {
			var rec mailRecord
			if err := json.Unmarshal(line, &rec); err != nil {
				return err
			}
			return s.apply(rec, now)
		})
	if err != nil {
		return nil, nil, err
	}
	s.log, s.lines = log, lines
	if s.lines > 2*s.live+64 {
		if err := s.compactLocked(); err != nil {
			log.Close()
			return nil, nil, fmt.Errorf("mailbox store: %w", err)
		}
	}
	return s, func() { _ = s.Close() }, nil
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

// appendLocked writes rec (not yet durable: see appendLog.durable) and
// returns its sequence number. Callers hold s.mu.
func (s *FileMailboxStore) appendLocked(rec mailRecord) (uint64, error) {
	line, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	seq, err := s.log.append(line)
	if err != nil {
		return 0, err
	}
	s.lines++
	return seq, nil
}

// Put parks m durably unless it would exceed q.
func (s *FileMailboxStore) Put(ctx context.Context, m ports.Mail, q ports.MailQuota) error {
	s.mu.Lock()
	if err := q.Admits(s.boxes[m.To.Key()], m); err != nil {
		s.mu.Unlock()
		return err
	}
	seq, err := s.appendLocked(putRecord(m))
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("put mail for %s: %w", m.To, err)
	}
	m.Blob = slices.Clone(m.Blob)
	s.insertLocked(m)
	s.mu.Unlock()
	if err := s.log.durable(seq); err != nil {
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
	if err := s.log.durable(seq); err != nil {
		return fmt.Errorf("delete mail of %s: %w", to, err)
	}
	return nil
}

// Expire drops mail expired at now and compacts the log when most of it
// is garbage (expired mail is not written as deletions: the log is
// rewritten without it).
func (s *FileMailboxStore) Expire(ctx context.Context, now time.Time) (int, error) {
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

// compactLocked rewrites the log with the live mail only.
func (s *FileMailboxStore) compactLocked() error {
	lines, err := s.log.rewrite(func(w *bufio.Writer) (int, error) {
		n := 0
		for _, box := range s.boxes {
			for _, m := range box {
				line, err := json.Marshal(putRecord(m))
				if err != nil {
					return 0, err
				}
				w.Write(append(line, '\n'))
				n++
			}
		}
		return n, nil
	})
	if err != nil {
		return err
	}
	s.lines = lines
	return nil
}

// Close closes the log.
func (s *FileMailboxStore) Close() error { return s.log.Close() }

// FilePrekeyStore keeps each user's current mailbox key in an append-only
// JSON-lines log (the last line of a name wins), fsynced before PutPrekey
// returns; opening rewrites it with one line per name.
type FilePrekeyStore struct {
	mu   sync.Mutex // taken before the log's
	log  *appendLog
	keys map[string]ports.SignedPrekey
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
	s := &FilePrekeyStore{keys: make(map[string]ports.SignedPrekey)}
	log, _, err := openAppendLog(filepath.Join(string(dir), prekeysFile), "prekey log", 4*ports.MaxPrekeySize,
		func(line []byte) error {
			var rec prekeyRecord
			if err := json.Unmarshal(line, &rec); err != nil {
				return err
			}
			k, err := rec.prekey()
			if err != nil {
				return err
			}
			s.keys[k.Name.Key()] = k
			return nil
		})
	if err != nil {
		return nil, nil, err
	}
	s.log = log
	if _, err := log.rewrite(s.writeKeys); err != nil {
		log.Close()
		return nil, nil, fmt.Errorf("prekey store: %w", err)
	}
	return s, func() { _ = s.Close() }, nil
}

// writeKeys writes one line per name.
func (s *FilePrekeyStore) writeKeys(w *bufio.Writer) (int, error) {
	for _, k := range s.keys {
		line, err := json.Marshal(toPrekeyRecord(k))
		if err != nil {
			return 0, err
		}
		w.Write(append(line, '\n'))
	}
	return len(s.keys), nil
}

// PutPrekey stores k as its name's current key, durably.
func (s *FilePrekeyStore) PutPrekey(ctx context.Context, k ports.SignedPrekey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	line, err := json.Marshal(toPrekeyRecord(k))
	if err != nil {
		return err
	}
	seq, err := s.log.append(line)
	if err == nil {
		err = s.log.durable(seq)
	}
	if err != nil {
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
func (s *FilePrekeyStore) Close() error { return s.log.Close() }
