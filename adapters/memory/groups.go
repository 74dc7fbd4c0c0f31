package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.GroupStore = (*GroupStore)(nil)

// GroupStore is a ports.GroupStore in memory, safe for concurrent use.
// History is ordered by SentAt and, for equal times, by the order stored;
// GroupIDs and GroupOutboxMembers are sorted.
type GroupStore struct {
	mu      sync.RWMutex
	seq     uint64
	logs    map[domain.GroupID][]domain.GroupEntry
	hashes  map[domain.Epoch]bool
	msgs    map[groupMsgKey]*groupStored
	history map[domain.GroupID][]*groupStored
	outbox  map[string]map[groupMsgKey]domain.Username // member key → undelivered copies
}

type groupMsgKey struct {
	group domain.GroupID
	id    domain.MessageID
}

type groupStored struct {
	msg        domain.GroupMessage
	seq        uint64
	deliveries map[string]*domain.GroupDelivery // ours only, by member key
}

// NewGroupStore returns an empty store.
func NewGroupStore() *GroupStore {
	return &GroupStore{logs: map[domain.GroupID][]domain.GroupEntry{}, hashes: map[domain.Epoch]bool{},
		msgs: map[groupMsgKey]*groupStored{}, history: map[domain.GroupID][]*groupStored{},
		outbox: map[string]map[groupMsgKey]domain.Username{}}
}

// SaveGroupEntries implements ports.GroupStore.
func (s *GroupStore) SaveGroupEntries(_ context.Context, group domain.GroupID, entries []domain.GroupEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		if e.Group() != group {
			return fmt.Errorf("save entry of group %s in %s: %w", e.Group(), group, domain.ErrBadGroupEntry)
		}
		if s.hashes[e.Hash()] {
			continue
		}
		s.hashes[e.Hash()] = true
		s.logs[group] = append(s.logs[group], e)
	}
	return nil
}

// GroupEntries implements ports.GroupStore.
func (s *GroupStore) GroupEntries(_ context.Context, group domain.GroupID) ([]domain.GroupEntry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.logs[group]
	if !ok {
		return nil, fmt.Errorf("group %s: %w", group, domain.ErrUnknownGroup)
	}
	return slices.Clone(l), nil
}

// GroupIDs implements ports.GroupStore.
func (s *GroupStore) GroupIDs(context.Context) ([]domain.GroupID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]domain.GroupID, 0, len(s.logs))
	for id := range s.logs {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b domain.GroupID) int { return cmp.Compare(a.String(), b.String()) })
	return out, nil
}

func (s *GroupStore) insert(m domain.GroupMessage) *groupStored {
	s.seq++
	st := &groupStored{msg: m, seq: s.seq}
	s.msgs[groupMsgKey{m.Group(), m.ID()}] = st
	h := s.history[m.Group()]
	i := len(h)
	for i > 0 && h[i-1].msg.SentAt().After(m.SentAt()) {
		i--
	}
	s.history[m.Group()] = slices.Insert(h, i, st)
	return st
}

// SaveGroupOutgoing implements ports.GroupStore.
func (s *GroupStore) SaveGroupOutgoing(_ context.Context, m domain.GroupMessage, to []domain.Username) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := groupMsgKey{m.Group(), m.ID()}
	if _, ok := s.msgs[k]; ok {
		return fmt.Errorf("save group message %s: stored already", m.ID())
	}
	st := s.insert(m)
	st.deliveries = make(map[string]*domain.GroupDelivery, len(to))
	for _, u := range to {
		st.deliveries[u.Key()] = &domain.GroupDelivery{Member: u, State: domain.MessageQueued}
		if s.outbox[u.Key()] == nil {
			s.outbox[u.Key()] = map[groupMsgKey]domain.Username{}
		}
		s.outbox[u.Key()][k] = u
	}
	return nil
}

// SaveGroupIncoming implements ports.GroupStore.
func (s *GroupStore) SaveGroupIncoming(_ context.Context, m domain.GroupMessage) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.msgs[groupMsgKey{m.Group(), m.ID()}]; ok {
		return false, nil
	}
	s.insert(m)
	return true, nil
}

// SetGroupDelivery implements ports.GroupStore.
func (s *GroupStore) SetGroupDelivery(_ context.Context, group domain.GroupID, id domain.MessageID, member domain.Username, st domain.MessageState) (domain.GroupMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := groupMsgKey{group, id}
	m, ok := s.msgs[k]
	if !ok || m.deliveries[member.Key()] == nil {
		return domain.GroupMessage{}, fmt.Errorf("delivery of %s to %s: %w", id, member, domain.ErrNotFound)
	}
	d := m.deliveries[member.Key()]
	if !d.State.CanMove(st) {
		return domain.GroupMessage{}, &domain.TransitionError{What: "delivery of " + id.String() + " to " + member.String(), From: d.State.String(), To: st.String()}
	}
	d.State = st
	if st == domain.MessageDelivered || st == domain.MessageRead || st == domain.MessageFailed {
		delete(s.outbox[member.Key()], k)
	} else if s.outbox[member.Key()] != nil {
		s.outbox[member.Key()][k] = member
	}
	return m.msg, nil
}

// GroupDeliveries implements ports.GroupStore.
func (s *GroupStore) GroupDeliveries(_ context.Context, group domain.GroupID, id domain.MessageID) ([]domain.GroupDelivery, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.msgs[groupMsgKey{group, id}]
	if !ok {
		return nil, fmt.Errorf("group message %s: %w", id, domain.ErrNotFound)
	}
	out := make([]domain.GroupDelivery, 0, len(m.deliveries))
	for _, d := range m.deliveries {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b domain.GroupDelivery) int { return cmp.Compare(a.Member.Key(), b.Member.Key()) })
	return out, nil
}

// GroupOutbox implements ports.GroupStore.
func (s *GroupStore) GroupOutbox(_ context.Context, member domain.Username) ([]ports.GroupCopy, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var stored []*groupStored
	for k := range s.outbox[member.Key()] {
		stored = append(stored, s.msgs[k])
	}
	slices.SortFunc(stored, func(a, b *groupStored) int {
		if c := a.msg.SentAt().Compare(b.msg.SentAt()); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	out := make([]ports.GroupCopy, len(stored))
	for i, st := range stored {
		d := st.deliveries[member.Key()]
		out[i] = ports.GroupCopy{Message: st.msg, Member: d.Member, State: d.State}
	}
	return out, nil
}

// GroupOutboxMembers implements ports.GroupStore.
func (s *GroupStore) GroupOutboxMembers(context.Context) ([]domain.Username, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []domain.Username
	for _, copies := range s.outbox {
		for _, u := range copies {
			out = append(out, u)
			break
		}
	}
	slices.SortFunc(out, func(a, b domain.Username) int { return cmp.Compare(a.Key(), b.Key()) })
	return out, nil
}

// GroupHistory implements ports.GroupStore.
func (s *GroupStore) GroupHistory(_ context.Context, group domain.GroupID, before time.Time, limit int) ([]domain.GroupMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	h := s.history[group]
	end := len(h)
	if !before.IsZero() {
		end = 0
		for end < len(h) && h[end].msg.SentAt().Before(before) {
			end++
		}
	}
	start := max(0, end-limit)
	out := make([]domain.GroupMessage, 0, end-start)
	for _, st := range h[start:end] {
		out = append(out, st.msg)
	}
	return out, nil
}
