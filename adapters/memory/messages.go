package memory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.MessageStore = (*MessageStore)(nil)

// Default caps of a MessageStore: messages in all and bytes of their bodies.
const (
	DefaultMaxMessages     = 200_000
	DefaultMaxMessageBytes = 512 << 20
)

// MessageStore is a ports.MessageStore in memory. History is kept per peer
// (by Username.Key), ordered by SentAt and, for equal times, by the order
// messages were stored. Incoming messages are deduplicated by (sender key,
// ID); our own by ID. It holds at most a fixed number of messages and body
// bytes (domain.ErrTooLarge beyond). It is safe for concurrent use.
//
// Choices where the port is silent: History and Search with limit <= 0
// return nothing; Search with a query of no words returns nothing; SetState
// only finds our own (outgoing) messages; OutboxPeers is sorted by name.
type MessageStore struct {
	mu       sync.RWMutex
	seq      uint64
	ours     map[domain.MessageID]*storedMessage
	theirs   map[incomingKey]*storedMessage
	byPeer   map[string][]*storedMessage // sorted by (SentAt, seq)
	count    int
	bytes    int64
	maxCount int
	maxBytes int64
	// failIncoming: how many of the next SaveIncoming calls fail (FailIncoming).
	failIncoming atomic.Int64
}

// ErrSimulatedDiskError is what FailIncoming makes SaveIncoming return.
var ErrSimulatedDiskError = errors.New("memory: simulated disk error")

// FailIncoming makes the next n SaveIncoming calls fail as a broken disk
// would, so tests can check that callers keep what was not stored.
func (s *MessageStore) FailIncoming(n int) { s.failIncoming.Store(int64(n)) }

type storedMessage struct {
	msg domain.Message
	seq uint64
}

type incomingKey struct {
	sender string
	id     domain.MessageID
}

// NewMessageStore returns an empty store with the default caps.
func NewMessageStore() *MessageStore {
	return NewMessageStoreWithCaps(DefaultMaxMessages, DefaultMaxMessageBytes)
}

// NewMessageStoreWithCaps returns an empty store holding at most maxMessages
// messages and maxBytes bytes of bodies.
func NewMessageStoreWithCaps(maxMessages int, maxBytes int64) *MessageStore {
	return &MessageStore{
		ours:     make(map[domain.MessageID]*storedMessage),
		theirs:   make(map[incomingKey]*storedMessage),
		byPeer:   make(map[string][]*storedMessage),
		maxCount: maxMessages,
		maxBytes: maxBytes,
	}
}

func before(a, b *storedMessage) int {
	if c := a.msg.SentAt().Compare(b.msg.SentAt()); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// insertLocked adds m to history; the caller holds the write lock and has
// checked for duplicates.
func (s *MessageStore) insertLocked(m domain.Message) (*storedMessage, error) {
	if s.count >= s.maxCount || s.bytes+int64(len(m.Body())) > s.maxBytes {
		return nil, fmt.Errorf("store message %s: %w: the store holds %d messages, %d bytes", m.ID(), domain.ErrTooLarge, s.count, s.bytes)
	}
	s.seq++
	sm := &storedMessage{msg: m, seq: s.seq}
	k := m.Peer().Key()
	h := s.byPeer[k]
	i, _ := slices.BinarySearchFunc(h, sm, before)
	s.byPeer[k] = slices.Insert(h, i, sm)
	s.count++
	s.bytes += int64(len(m.Body()))
	return sm, nil
}

func checkMessage(m domain.Message, dir domain.Direction) error {
	switch {
	case m.IsZero():
		return fmt.Errorf("store message: %w: zero message", domain.ErrNotFound)
	case m.Direction() != dir:
		return fmt.Errorf("store message %s: direction %s, want %s", m.ID(), m.Direction(), dir)
	case m.Peer().IsZero():
		return fmt.Errorf("store message %s: %w: no peer", m.ID(), domain.ErrInvalidUsername)
	}
	return nil
}

// SaveOutgoing stores one of our new messages in history and the outbox.
func (s *MessageStore) SaveOutgoing(ctx context.Context, m domain.Message) error {
	return s.SaveOutgoingStaged(ctx, m, nil)
}

// SaveOutgoingStaged is SaveOutgoing, calling committed (if set) once the
// message is stored, before it returns.
func (s *MessageStore) SaveOutgoingStaged(ctx context.Context, m domain.Message, committed func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkMessage(m, domain.Outgoing); err != nil {
		return err
	}
	s.mu.Lock()
	if _, ok := s.ours[m.ID()]; ok {
		s.mu.Unlock()
		return fmt.Errorf("store message %s: already stored", m.ID())
	}
	sm, err := s.insertLocked(m)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.ours[m.ID()] = sm
	s.mu.Unlock()
	if committed != nil {
		committed()
	}
	return nil
}

// SaveIncoming stores a received message unless the sender's message with
// that ID is stored already, and reports whether it was new.
func (s *MessageStore) SaveIncoming(ctx context.Context, m domain.Message) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if s.failIncoming.Add(-1) >= 0 {
		return false, ErrSimulatedDiskError
	}
	if err := checkMessage(m, domain.Incoming); err != nil {
		return false, err
	}
	k := incomingKey{sender: m.From().Key(), id: m.ID()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.theirs[k]; ok {
		return false, nil
	}
	sm, err := s.insertLocked(m)
	if err != nil {
		return false, err
	}
	s.theirs[k] = sm
	return true, nil
}

// SetState moves one of our messages to state st if the domain allows it.
func (s *MessageStore) SetState(ctx context.Context, id domain.MessageID, st domain.MessageState) (domain.Message, error) {
	if err := ctx.Err(); err != nil {
		return domain.Message{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sm, ok := s.ours[id]
	if !ok {
		return domain.Message{}, fmt.Errorf("message %s: %w", id, domain.ErrNotFound)
	}
	m := sm.msg
	if err := m.MoveTo(st); err != nil {
		return sm.msg, err
	}
	sm.msg = m
	return m, nil
}

// MarkStates moves each listed message of ours to its state where the
// domain allows it and returns the marks that moved one, in order.
func (s *MessageStore) MarkStates(ctx context.Context, marks []ports.StateMark) ([]ports.StateMark, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var moved []ports.StateMark
	for _, mk := range marks {
		sm, ok := s.ours[mk.ID]
		if !ok {
			continue
		}
		m := sm.msg
		if m.State() == mk.State || m.MoveTo(mk.State) != nil {
			continue
		}
		sm.msg = m
		moved = append(moved, mk)
	}
	return moved, nil
}

func inOutbox(m domain.Message) bool {
	return m.IsPending()
}

// Outbox lists our queued, sent or stored messages to peer, oldest first.
func (s *MessageStore) Outbox(ctx context.Context, peer domain.Username) ([]domain.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []domain.Message
	for _, sm := range s.byPeer[peer.Key()] {
		if inOutbox(sm.msg) {
			out = append(out, sm.msg)
		}
	}
	return out, nil
}

// OutboxPeers lists the peers with messages in the outbox, sorted by name.
func (s *MessageStore) OutboxPeers(ctx context.Context) ([]domain.Username, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var peers []domain.Username
	for _, h := range s.byPeer {
		for _, sm := range h {
			if inOutbox(sm.msg) {
				peers = append(peers, sm.msg.Peer())
				break
			}
		}
	}
	slices.SortFunc(peers, func(a, b domain.Username) int { return strings.Compare(a.String(), b.String()) })
	return peers, nil
}

// History returns at most limit messages with peer sent before bound (the
// zero time: no bound), oldest first.
func (s *MessageStore) History(ctx context.Context, peer domain.Username, bound time.Time, limit int) ([]domain.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	h := s.byPeer[peer.Key()]
	end := len(h)
	if !bound.IsZero() {
		end, _ = slices.BinarySearchFunc(h, bound, func(sm *storedMessage, t time.Time) int {
			if sm.msg.SentAt().Before(t) {
				return -1
			}
			return 1
		})
	}
	start := max(0, end-limit)
	out := make([]domain.Message, 0, end-start)
	for _, sm := range h[start:end] {
		out = append(out, sm.msg)
	}
	return out, nil
}

// Search returns at most limit messages whose body contains every word of
// query (case-insensitively), newest first.
func (s *MessageStore) Search(ctx context.Context, query string, limit int) ([]domain.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	words := strings.Fields(strings.ToLower(query))
	if limit <= 0 || len(words) == 0 {
		return nil, nil
	}
	s.mu.RLock()
	var hits []storedMessage // copies: SetState may change the originals once unlocked
	for _, h := range s.byPeer {
	next:
		for _, sm := range h {
			body := strings.ToLower(sm.msg.Body())
			for _, w := range words {
				if !strings.Contains(body, w) {
					continue next
				}
			}
			hits = append(hits, *sm)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(hits, func(a, b storedMessage) int { return before(&b, &a) })
	hits = hits[:min(limit, len(hits))]
	out := make([]domain.Message, len(hits))
	for i, sm := range hits {
		out[i] = sm.msg
	}
	return out, nil
}
