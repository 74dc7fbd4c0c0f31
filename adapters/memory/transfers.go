package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.TransferStore = (*TransferStore)(nil)

// DefaultMaxTransfers caps the transfers a TransferStore keeps.
const DefaultMaxTransfers = 100_000

// TransferStore is a ports.TransferStore in memory. List is ordered by
// CreatedAt, newest first, and for equal times by the order transfers were
// first saved, latest first. It is safe for concurrent use.
type TransferStore struct {
	mu        sync.RWMutex
	seq       uint64
	transfers map[domain.TransferID]storedTransfer
	max       int
}

type storedTransfer struct {
	t   domain.Transfer
	seq uint64
}

// NewTransferStore returns an empty store with the default cap.
func NewTransferStore() *TransferStore { return NewTransferStoreWithCap(DefaultMaxTransfers) }

// NewTransferStoreWithCap returns an empty store keeping at most max transfers.
func NewTransferStoreWithCap(max int) *TransferStore {
	return &TransferStore{transfers: make(map[domain.TransferID]storedTransfer), max: max}
}

// Save inserts or replaces a transfer.
func (s *TransferStore) Save(ctx context.Context, t domain.Transfer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.IsZero() {
		return fmt.Errorf("save transfer: %w: zero transfer", domain.ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.transfers[t.ID()]
	if !ok {
		if len(s.transfers) >= s.max {
			return fmt.Errorf("save transfer %s: %w: %d transfers", t.ID().Short(), domain.ErrTooLarge, len(s.transfers))
		}
		s.seq++
		old.seq = s.seq
	}
	s.transfers[t.ID()] = storedTransfer{t: t, seq: old.seq}
	return nil
}

// SaveSoon is Save: nothing here is durable anyway.
func (s *TransferStore) SaveSoon(ctx context.Context, t domain.Transfer) error { return s.Save(ctx, t) }

// Get returns one transfer; domain.ErrNotFound if none.
func (s *TransferStore) Get(ctx context.Context, id domain.TransferID) (domain.Transfer, error) {
	if err := ctx.Err(); err != nil {
		return domain.Transfer{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.transfers[id]
	if !ok {
		return domain.Transfer{}, fmt.Errorf("transfer %s: %w", id.Short(), domain.ErrNotFound)
	}
	return st.t, nil
}

// List returns every transfer, newest first.
func (s *TransferStore) List(ctx context.Context) ([]domain.Transfer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	all := make([]storedTransfer, 0, len(s.transfers))
	for _, st := range s.transfers {
		all = append(all, st)
	}
	s.mu.RUnlock()
	slices.SortFunc(all, func(a, b storedTransfer) int {
		if c := b.t.CreatedAt().Compare(a.t.CreatedAt()); c != 0 {
			return c
		}
		return cmp.Compare(b.seq, a.seq)
	})
	out := make([]domain.Transfer, len(all))
	for i, st := range all {
		out[i] = st.t
	}
	return out, nil
}
