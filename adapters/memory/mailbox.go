package memory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var (
	_ ports.MailboxStore = (*MailboxStore)(nil)
	_ ports.PrekeyStore  = (*PrekeyStore)(nil)
	_ ports.MailKeyStore = (*MailKeyStore)(nil)
	_ ports.Mailbox      = (*Mailbox)(nil)
)

// MailboxStore is a ports.MailboxStore in memory (lost with the process:
// for tests; the registry server uses the file store). Safe for concurrent use.
type MailboxStore struct {
	mu    sync.Mutex
	boxes map[string][]ports.Mail // by recipient Username.Key, oldest first
}

// NewMailboxStore makes an empty mailbox store.
func NewMailboxStore() *MailboxStore { return &MailboxStore{boxes: make(map[string][]ports.Mail)} }

func cloneMail(m ports.Mail) ports.Mail {
	m.Blob = slices.Clone(m.Blob)
	return m
}

// Put parks m unless it would exceed q.
func (s *MailboxStore) Put(ctx context.Context, m ports.Mail, q ports.MailQuota) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	box := s.boxes[m.To.Key()]
	if err := q.Admits(box, m); err != nil {
		return err
	}
	box = append(box, cloneMail(m))
	sort.SliceStable(box, func(i, j int) bool { return box[i].Deposited.Before(box[j].Deposited) })
	s.boxes[m.To.Key()] = box
	return nil
}

// List returns to's unexpired mail, oldest first.
func (s *MailboxStore) List(ctx context.Context, to domain.Username, now time.Time, limit int) ([]ports.Mail, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ports.Unexpired(s.boxes[to.Key()], now, limit), nil
}

// Delete removes to's mail with the given IDs.
func (s *MailboxStore) Delete(ctx context.Context, to domain.Username, ids []ports.MailID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	box := slices.DeleteFunc(s.boxes[to.Key()], func(m ports.Mail) bool { return slices.Contains(ids, m.ID) })
	if len(box) == 0 {
		delete(s.boxes, to.Key())
	} else {
		s.boxes[to.Key()] = box
	}
	return nil
}

// Expire removes every mail expired at now.
func (s *MailboxStore) Expire(ctx context.Context, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, box := range s.boxes {
		before := len(box)
		box = slices.DeleteFunc(box, func(m ports.Mail) bool { return !m.Expires.After(now) })
		n += before - len(box)
		if len(box) == 0 {
			delete(s.boxes, k)
		} else {
			s.boxes[k] = box
		}
	}
	return n, nil
}

// PrekeyStore is a ports.PrekeyStore in memory.
type PrekeyStore struct {
	mu   sync.Mutex
	keys map[string]ports.SignedPrekey
}

// NewPrekeyStore makes an empty prekey store.
func NewPrekeyStore() *PrekeyStore { return &PrekeyStore{keys: make(map[string]ports.SignedPrekey)} }

func clonePrekey(k ports.SignedPrekey) ports.SignedPrekey {
	k.Public, k.Signature = slices.Clone(k.Public), slices.Clone(k.Signature)
	return k
}

// PutPrekey stores k as its name's current key.
func (s *PrekeyStore) PutPrekey(ctx context.Context, k ports.SignedPrekey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[k.Name.Key()] = clonePrekey(k)
	return nil
}

// GetPrekey returns name's current key.
func (s *PrekeyStore) GetPrekey(ctx context.Context, name domain.Username) (ports.SignedPrekey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[name.Key()]
	if !ok {
		return ports.SignedPrekey{}, fmt.Errorf("prekey of %s: %w", name, domain.ErrNotFound)
	}
	return clonePrekey(k), nil
}

// MailKeyStore is a ports.MailKeyStore in memory.
type MailKeyStore struct {
	mu   sync.Mutex
	keys []ports.MailKey
}

// NewMailKeyStore makes an empty mailbox key store.
func NewMailKeyStore() *MailKeyStore { return &MailKeyStore{} }

// SaveMailKey stores k, replacing one with its key ID.
func (s *MailKeyStore) SaveMailKey(ctx context.Context, k ports.MailKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k.Prekey, k.Private = clonePrekey(k.Prekey), slices.Clone(k.Private)
	for i, o := range s.keys {
		if o.Prekey.KeyID == k.Prekey.KeyID {
			s.keys[i] = k
			return nil
		}
	}
	s.keys = append(s.keys, k)
	return nil
}

// MailKeys lists our keys, oldest first.
func (s *MailKeyStore) MailKeys(ctx context.Context) ([]ports.MailKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ports.MailKey, len(s.keys))
	for i, k := range s.keys {
		k.Prekey, k.Private = clonePrekey(k.Prekey), slices.Clone(k.Private)
		out[i] = k
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Prekey.Created.Before(out[j].Prekey.Created) })
	return out, nil
}

// DeleteMailKey deletes a key.
func (s *MailKeyStore) DeleteMailKey(ctx context.Context, keyID uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = slices.DeleteFunc(s.keys, func(k ports.MailKey) bool { return k.Prekey.KeyID == keyID })
	return nil
}

// Mailbox is the client's ports.Mailbox over an in-process registry
// mailbox service, riding the session of an in-memory Directory.
type Mailbox struct {
	svc ports.MailboxService
	reg ports.RegistryService
	dir *Directory
}

// NewMailbox is the mailbox of dir's session at the registry reg, whose
// mailbox service is svc.
func NewMailbox(svc ports.MailboxService, reg ports.RegistryService, dir *Directory) *Mailbox {
	return &Mailbox{svc: svc, reg: reg, dir: dir}
}

func (m *Mailbox) sessionInfo(ctx context.Context) (ports.SessionInfo, error) {
	if err := m.dir.reachable(); err != nil {
		return ports.SessionInfo{}, err
	}
	me, _, token, _ := m.dir.session()
	if token == "" {
		return ports.SessionInfo{}, ports.ErrSessionInvalid
	}
	return m.reg.Authenticate(ctx, me.Name(), token)
}

func (m *Mailbox) proof(ctx context.Context, action domain.RegistryAction) (domain.RegistryProof, []byte, error) {
	if err := m.dir.reachable(); err != nil {
		return domain.RegistryProof{}, nil, err
	}
	me, _, _, _ := m.dir.session()
	if me.IsZero() {
		return domain.RegistryProof{}, nil, ports.ErrSessionInvalid
	}
	ch, err := m.reg.Challenge(ctx)
	if err != nil {
		return domain.RegistryProof{}, nil, err
	}
	p := domain.RegistryProof{Action: action, Name: me.Name(), Key: me.PublicKey(), Challenge: ch}
	return p, p.Sign(me), nil
}

// PublishPrekey publishes k over our session.
func (m *Mailbox) PublishPrekey(ctx context.Context, k ports.SignedPrekey) error {
	s, err := m.sessionInfo(ctx)
	if err != nil {
		return err
	}
	return m.svc.PublishPrekey(ctx, s, k)
}

// Prekey returns name's current key.
func (m *Mailbox) Prekey(ctx context.Context, name domain.Username) (ports.SignedPrekey, error) {
	if err := m.dir.reachable(); err != nil {
		return ports.SignedPrekey{}, err
	}
	return m.svc.Prekey(ctx, name)
}

// Deposit parks blob for to.
func (m *Mailbox) Deposit(ctx context.Context, to domain.Username, blob []byte, ttl time.Duration) (ports.MailReceipt, error) {
	s, err := m.sessionInfo(ctx)
	if err != nil {
		return ports.MailReceipt{}, err
	}
	mail, err := m.svc.Deposit(ctx, s, to, slices.Clone(blob), ttl)
	if err != nil {
		return ports.MailReceipt{}, err
	}
	return ports.MailReceipt{ID: mail.ID, Expires: mail.Expires}, nil
}

// Fetch returns our oldest parked mail.
func (m *Mailbox) Fetch(ctx context.Context) (ports.MailBatch, error) {
	p, sig, err := m.proof(ctx, domain.ActionMailboxFetch)
	if err != nil {
		return ports.MailBatch{}, err
	}
	return m.svc.Fetch(ctx, p, sig, ports.MaxFetch)
}

// Delete removes handled mail.
func (m *Mailbox) Delete(ctx context.Context, ids []ports.MailID) error {
	p, sig, err := m.proof(ctx, domain.ActionMailboxDelete)
	if err != nil {
		return err
	}
	return m.svc.Delete(ctx, p, sig, ids)
}

// MailWaiting signals each deposit for us, and once at the start.
func (m *Mailbox) MailWaiting(ctx context.Context) (<-chan struct{}, error) {
	me, _, _, _ := m.dir.session()
	if me.IsZero() {
		return nil, ports.ErrSessionInvalid
	}
	in := m.svc.Arrivals(ctx, me.Name())
	out := make(chan struct{}, 1)
	out <- struct{}{}
	go func() {
		defer close(out)
		for range in {
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out, nil
}
