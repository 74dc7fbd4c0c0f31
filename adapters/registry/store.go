package registry

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
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
// cut off on open. Concurrent binds share one fsync (group commit, see
// appendLog). An embedded SQL database would add nothing a write-once map
// needs, and a shared store (Redis) replaces this one behind
// ports.AccountStore when the registry scales out.
type FileAccountStore struct {
	mu    sync.RWMutex // taken before the log's
	log   *appendLog
	byKey map[string]account
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
	s := &FileAccountStore{byKey: make(map[string]account)}
	log, _, err := openAppendLog(filepath.Join(string(dir), accountsFile), "account log", maxAccountLine, s.replay)
	if err != nil {
		return nil, nil, err
	}
	s.log = log
	return s, func() { _ = s.Close() }, nil
}

func (s *FileAccountStore) replay(line []byte) error {
	var rec accountRecord
	if err := json.Unmarshal(line, &rec); err != nil {
		return err
	}
	id, err := rec.identity()
	if err != nil {
		return err
	}
	if _, dup := s.byKey[id.Name().Key()]; !dup {
		s.byKey[id.Name().Key()] = account{id: id}
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
		return s.durable(id, have.seq)
	}
	line, err := json.Marshal(accountRecord{Name: id.Name().String(), Key: base64.StdEncoding.EncodeToString(id.PublicKey()), BoundAt: now.UTC()})
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("bind %s: %w", id.Name(), err)
	}
	seq, err := s.log.append(line)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("bind %s: %w", id.Name(), err)
	}
	s.byKey[k] = account{id: id, seq: seq}
	s.mu.Unlock()
	return s.durable(id, seq)
}

func (s *FileAccountStore) durable(id domain.Identity, seq uint64) error {
	if err := s.log.durable(seq); err != nil {
		return fmt.Errorf("bind %s: %w", id.Name(), err)
	}
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
func (s *FileAccountStore) Close() error { return s.log.Close() }

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
