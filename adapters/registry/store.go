package registry

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// accountsFile is the account log under the data directory.
const accountsFile = "accounts.jsonl"

// maxAccountLine bounds one line of the account log.
const maxAccountLine = 4096

// FileAccountStore keeps name→key bindings in an append-only JSON-lines log
// under the data directory, fsynced before Bind returns, and in memory for
// reads. A binding is never changed or removed, so the log is the whole
// history and needs no compaction; a torn last line (crash mid-write) is
// cut off on open. Concurrent binds share one fsync (group commit). An
// embedded SQL database would add nothing a write-once map needs, and a
// shared store (Redis) can replace this one behind ports.AccountStore when
// the registry scales out.
type FileAccountStore struct {
	mu      sync.RWMutex
	f       *os.File
	byKey   map[string]account
	written uint64 // sequence number of the last line appended
	failed  error  // a write or sync failed: the log's tail is uncertain
	closed  bool

	syncMu sync.Mutex    // one fsync at a time
	synced atomic.Uint64 // every line up to this sequence number is on disk
}

type account struct {
	id  domain.Identity
	seq uint64 // line that bound it; 0 for lines read at open
}

var _ ports.AccountStore = (*FileAccountStore)(nil)

type accountRecord struct {
	Name    string    `json:"name"`
	Key     string    `json:"key"` // standard base64 of the Ed25519 public key
	BoundAt time.Time `json:"bound_at"`
}

// NewFileAccountStore opens (creating) the account log in dir. The cleanup
// closes it.
func NewFileAccountStore(dir DataDir) (*FileAccountStore, func(), error) {
	if dir == "" {
		return nil, nil, errors.New("account store: no data directory")
	}
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return nil, nil, fmt.Errorf("account store: %w", err)
	}
	path := filepath.Join(string(dir), accountsFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("account store: %w", err)
	}
	s := &FileAccountStore{f: f, byKey: make(map[string]account)}
	if err := s.load(); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("account store %s: %w", path, err)
	}
	return s, func() { _ = s.Close() }, nil
}

func (s *FileAccountStore) load() error {
	r := bufio.NewReaderSize(s.f, maxAccountLine)
	var good int64
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, io.EOF) {
			break // a partial last line (no newline) is a torn write
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("line at offset %d longer than %d bytes", good, maxAccountLine)
		}
		if err != nil {
			return err
		}
		var rec accountRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("line at offset %d: %w", good, err)
		}
		id, err := rec.identity()
		if err != nil {
			return fmt.Errorf("line at offset %d: %w", good, err)
		}
		if _, dup := s.byKey[id.Name().Key()]; !dup {
			s.byKey[id.Name().Key()] = account{id: id}
		}
		good += int64(len(line))
	}
	if err := s.f.Truncate(good); err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	if _, err := s.f.Seek(good, io.SeekStart); err != nil {
		return err
	}
	return nil
}

func (rec accountRecord) identity() (domain.Identity, error) {
	name, err := domain.ParseUsername(rec.Name)
	if err != nil {
		return domain.Identity{}, err
	}
	key, err := base64.StdEncoding.DecodeString(rec.Key)
	if err != nil {
		return domain.Identity{}, fmt.Errorf("key: %w", err)
	}
	return domain.NewIdentity(name, ed25519.PublicKey(key))
}

// Bind binds id's name to id's key on first use, durably: it returns once
// the binding (its own or the same key's earlier one) is on disk.
func (s *FileAccountStore) Bind(ctx context.Context, id domain.Identity, now time.Time) error {
	k := id.Name().Key()
	s.mu.Lock()
	if have, ok := s.byKey[k]; ok {
		s.mu.Unlock()
		if err := sameOrTaken(have.id, id); err != nil {
			return err
		}
		return s.durable(have.seq)
	}
	switch {
	case s.closed:
		s.mu.Unlock()
		return fmt.Errorf("bind %s: %w", id.Name(), os.ErrClosed)
	case s.failed != nil:
		s.mu.Unlock()
		return fmt.Errorf("bind %s: account log unusable after an earlier error: %w", id.Name(), s.failed)
	}
	line, err := json.Marshal(accountRecord{Name: id.Name().String(), Key: base64.StdEncoding.EncodeToString(id.PublicKey()), BoundAt: now.UTC()})
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("bind %s: %w", id.Name(), err)
	}
	if _, err := s.f.Write(append(line, '\n')); err != nil {
		s.failed = err
		s.mu.Unlock()
		return fmt.Errorf("bind %s: write account log: %w", id.Name(), err)
	}
	s.written++
	seq := s.written
	s.byKey[k] = account{id: id, seq: seq}
	s.mu.Unlock()
	return s.durable(seq)
}

// durable returns once line seq is on disk. Whoever syncs first syncs
// every line written so far, so concurrent binds share one fsync.
func (s *FileAccountStore) durable(seq uint64) error {
	if s.synced.Load() >= seq {
		return nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced.Load() >= seq {
		return nil
	}
	s.mu.RLock()
	upTo, failed := s.written, s.failed
	s.mu.RUnlock()
	if failed != nil {
		return fmt.Errorf("sync account log: %w", failed)
	}
	if err := s.f.Sync(); err != nil {
		s.mu.Lock()
		s.failed = err
		s.mu.Unlock()
		return fmt.Errorf("sync account log: %w", err)
	}
	s.synced.Store(upTo)
	return nil
}

func sameOrTaken(have, id domain.Identity) error {
	if have.SameKey(id.PublicKey()) {
		return nil
	}
	return fmt.Errorf("%s: %w", id.Name(), domain.ErrNameTaken)
}

// Get returns the identity bound to name.
func (s *FileAccountStore) Get(ctx context.Context, name domain.Username) (domain.Identity, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.byKey[name.Key()]
	if !ok {
		return domain.Identity{}, fmt.Errorf("account %s: %w", name, domain.ErrNotFound)
	}
	return a.id, nil
}

// Count is the number of bound names.
func (s *FileAccountStore) Count(ctx context.Context) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byKey), nil
}

// Close closes the log file.
func (s *FileAccountStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}

// PresenceStore keeps online sessions in this process's memory. It is the
// registry server's default; a shared store replaces it when several
// registry nodes serve one set of names.
type PresenceStore struct {
	mu    sync.RWMutex
	byKey map[string]ports.Presence
}

var _ ports.PresenceStore = (*PresenceStore)(nil)

// NewPresenceStore makes an empty presence store.
func NewPresenceStore() *PresenceStore {
	return &PresenceStore{byKey: make(map[string]ports.Presence)}
}

func clonePresence(p ports.Presence) ports.Presence { return p.Clone() }

// Put inserts or replaces the presence of p's name.
func (s *PresenceStore) Put(ctx context.Context, p ports.Presence) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKey[p.Identity.Name().Key()] = clonePresence(p)
	return nil
}

// Get returns the presence of name.
func (s *PresenceStore) Get(ctx context.Context, name domain.Username) (ports.Presence, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.byKey[name.Key()]
	if !ok {
		return ports.Presence{}, fmt.Errorf("presence %s: %w", name, domain.ErrNotFound)
	}
	return clonePresence(p), nil
}

// Delete removes name's presence.
func (s *PresenceStore) Delete(ctx context.Context, name domain.Username) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byKey, name.Key())
	return nil
}

// List returns every presence, by name.
func (s *PresenceStore) List(ctx context.Context) ([]ports.Presence, error) {
	s.mu.RLock()
	out := make([]ports.Presence, 0, len(s.byKey))
	for _, p := range s.byKey {
		out = append(out, clonePresence(p))
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Identity.Name().Key() < out[j].Identity.Name().Key() })
	return out, nil
}
