package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/chatx/chatx/domain"
)

// Transfers is the transfer store of a profile (ports.TransferStore). It
// shares the Store's database and writer; closing the Store closes it.
type Transfers struct{ s *Store }

// NewTransfers returns the transfer store kept in s.
func NewTransfers(s *Store) *Transfers { return &Transfers{s: s} }

// Save inserts or replaces a transfer. It is durable when it returns. The
// manifest is written with the first save; a transfer's manifest never
// changes afterwards, so later saves rewrite only the small columns.
func (t *Transfers) Save(ctx context.Context, tr domain.Transfer) error {
	return t.save(ctx, tr, false)
}

// SaveSoon is Save answered once the transaction is committed (visible),
// before the write-ahead log is synced: it becomes durable with the next
// durable write's fsync (or the checkpointer's).
func (t *Transfers) SaveSoon(ctx context.Context, tr domain.Transfer) error {
	return t.save(ctx, tr, true)
}

func (t *Transfers) save(ctx context.Context, tr domain.Transfer, lazy bool) error {
	if tr.IsZero() {
		return errors.New("save transfer: zero transfer ID")
	}
	row, err := transferToRow(tr)
	if err != nil {
		return fmt.Errorf("save transfer %s: %w", tr.ID().Short(), err)
	}
	write := func(ctx context.Context) error {
		_, err := t.s.ws.upsertTransfer.ExecContext(ctx, row.args()...)
		return err
	}
	if lazy {
		err = t.s.w.doLazy(ctx, write)
	} else {
		err = t.s.w.do(ctx, write)
	}
	if err != nil {
		return fmt.Errorf("save transfer %s: %w", tr.ID().Short(), err)
	}
	return nil
}

// Get returns one transfer; domain.ErrNotFound if none.
func (t *Transfers) Get(ctx context.Context, id domain.TransferID) (domain.Transfer, error) {
	tr, err := scanTransfer(t.s.rs.getTransfer.QueryRowContext(ctx, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Transfer{}, fmt.Errorf("transfer %s: %w", id.Short(), domain.ErrNotFound)
	}
	if err != nil {
		return domain.Transfer{}, fmt.Errorf("transfer %s: %w", id.Short(), err)
	}
	return tr, nil
}

// List returns every transfer, newest (by creation) first.
func (t *Transfers) List(ctx context.Context) ([]domain.Transfer, error) {
	rows, err := t.s.rs.listTransfers.QueryContext(ctx, maxTransfers)
	if err != nil {
		return nil, fmt.Errorf("list transfers: %w", err)
	}
	defer rows.Close()
	var ts []domain.Transfer
	for rows.Next() {
		tr, err := scanTransfer(rows)
		if err != nil {
			return nil, fmt.Errorf("list transfers: %w", err)
		}
		ts = append(ts, tr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list transfers: %w", err)
	}
	return ts, nil
}
