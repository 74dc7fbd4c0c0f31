package storage

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// A writeFn runs inside the writer's transaction. It must make at most one
// modifying statement (SQLite makes each statement atomic), so that a failing
// write leaves nothing behind and does not disturb the other writes of its
// batch; business refusals (not found, invalid move) return before writing.
type writeFn func(ctx context.Context) error

type writeOp struct {
	fn   writeFn
	done chan error // buffered; receives the op's own error or the commit's
	err  error      // the op's own result, kept until the commit decides
}

// writer is the single goroutine that writes to the database. Callers hand
// it operations through a bounded queue; it runs every operation waiting at
// that moment in one transaction, commits, and then answers each caller, so
// a call is durable when it returns and concurrent calls share an fsync.
type writer struct {
	conn *sql.Conn
	log  *slog.Logger
	q    chan *writeOp

	mu      sync.RWMutex // held for reading while sending on q; for writing to close q
	closed  bool
	closing chan struct{} // closed first by close, unblocks senders waiting on a full queue
	stopped chan struct{} // closed when the goroutine returns
	opPool  sync.Pool

	commits atomic.Int64 // transactions committed
	writes  atomic.Int64 // operations in them
}

// WriterStats counts the writer's work since Open.
type WriterStats struct {
	Commits int64 // transactions committed (one fsync each)
	Writes  int64 // write calls they carried
}

// Stats reports how many writes the writer committed in how many
// transactions; Writes/Commits is the mean batch size.
func (s *Store) Stats() WriterStats {
	return WriterStats{Commits: s.w.commits.Load(), Writes: s.w.writes.Load()}
}

func startWriter(conn *sql.Conn, logger *slog.Logger) *writer {
	w := &writer{
		conn:    conn,
		log:     logger,
		q:       make(chan *writeOp, queueSize),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
	}
	w.opPool.New = func() any { return &writeOp{done: make(chan error, 1)} }
	go w.run()
	return w
}

// do runs fn in the writer and waits until its transaction is committed.
// When ctx ends first, do returns ctx's error; the write may still be
// committed later.
func (w *writer) do(ctx context.Context, fn writeFn) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := w.opPool.Get().(*writeOp)
	op.fn = fn
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.q <- op:
		w.mu.RUnlock()
	case <-w.closing:
		w.mu.RUnlock()
		return ErrClosed
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-op.done:
		op.fn = nil
		w.opPool.Put(op) // only reused once its answer was received
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops accepting writes, lets the writer commit what is queued and
// waits for it to return.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.closing)
		close(w.q)
	}
	w.mu.Unlock()
	<-w.stopped
}

func (w *writer) run() {
	defer close(w.stopped)
	batch := make([]*writeOp, 0, maxBatch)
	for {
		op, ok := <-w.q
		if !ok {
			return
		}
		batch = append(batch[:0], op)
		more := true
	fill:
		for len(batch) < maxBatch {
			select {
			case op, ok := <-w.q:
				if !ok {
					more = false
					break fill
				}
				batch = append(batch, op)
			default:
				break fill
			}
		}
		w.commit(batch)
		clear(batch)
		if !more {
			return
		}
	}
}

// commit runs one batch in a transaction and answers its callers.
func (w *writer) commit(batch []*writeOp) {
	// The writer's context is not any caller's: a caller that gives up
	// must not abort the others' transaction.
	ctx := context.Background()
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		w.answerAll(batch, fmt.Errorf("begin transaction: %w", err))
		return
	}
	for _, op := range batch {
		op.err = op.fn(ctx)
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		err = fmt.Errorf("commit %d writes: %w", len(batch), err)
		w.log.Error("store commit failed", "writes", len(batch), "err", err)
		if _, rerr := w.conn.ExecContext(ctx, "ROLLBACK"); rerr != nil {
			w.log.Debug("rollback after failed commit", "err", rerr)
		}
		w.answerAll(batch, err)
		return
	}
	w.commits.Add(1)
	w.writes.Add(int64(len(batch)))
	for _, op := range batch {
		op.done <- op.err
	}
}

func (w *writer) answerAll(batch []*writeOp, err error) {
	for _, op := range batch {
		op.done <- err
	}
}
