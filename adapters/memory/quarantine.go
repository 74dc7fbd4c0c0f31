package memory

import (
	"context"
	"slices"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.QuarantineStore = (*QuarantineStore)(nil)

// QuarantineStore is a ports.QuarantineStore in memory. Its caps are the
// limits each Hold is given. It is safe for concurrent use.
type QuarantineStore struct {
	mu    sync.Mutex
	peers map[string][]domain.HeldItem // by sender name key, in arrival order
	order []string                     // sender keys, by first held item
	total int64
}

// NewQuarantineStore returns an empty quarantine.
func NewQuarantineStore() *QuarantineStore {
	return &QuarantineStore{peers: make(map[string][]domain.HeldItem)}
}

// Hold stores item within limits; false if its Key is held already.
func (q *QuarantineStore) Hold(ctx context.Context, item domain.HeldItem, limits domain.QuarantineLimits) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k := item.From.Name().Key()
	q.mu.Lock()
	defer q.mu.Unlock()
	held := q.peers[k]
	var bytes int64
	for _, h := range held {
		if h.Kind == item.Kind && h.Key() == item.Key() {
			return false, nil
		}
		bytes += h.Size()
	}
	u := domain.QuarantineUsage{PeerItems: len(held), PeerBytes: bytes, TotalBytes: q.total, Peers: len(q.peers)}
	if err := limits.Admit(u, item); err != nil {
		return false, err
	}
	if len(held) == 0 {
		q.order = append(q.order, k)
	}
	q.peers[k] = append(held, item)
	q.total += item.Size()
	return true, nil
}

// Requests summarises every stranger with held items, oldest first.
func (q *QuarantineStore) Requests(ctx context.Context) ([]domain.Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]domain.Request, 0, len(q.order))
	for _, k := range q.order {
		held := q.peers[k]
		r := domain.Request{From: held[0].From, First: held[0].ReceivedAt, Last: held[len(held)-1].ReceivedAt}
		for _, h := range held {
			r.Items++
			r.Bytes += h.Size()
			if h.Kind == domain.HeldOffer {
				r.Offers++
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// Held returns what from has waiting, in arrival order.
func (q *QuarantineStore) Held(ctx context.Context, from domain.Username) ([]domain.HeldItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.peers[from.Key()]), nil
}

// Drop removes everything from holds.
func (q *QuarantineStore) Drop(ctx context.Context, from domain.Username) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	k := from.Key()
	q.mu.Lock()
	defer q.mu.Unlock()
	held := q.peers[k]
	for _, h := range held {
		q.total -= h.Size()
	}
	delete(q.peers, k)
	if i := slices.Index(q.order, k); i >= 0 {
		q.order = slices.Delete(q.order, i, i+1)
	}
	return len(held), nil
}
