package storage

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// A writeFn runs inside the writer's transaction. It must make at most one
// modifying statement (SQLite makes each statement atomic), or undo what it
// wrote with a savepoint before it fails (MarkStates), so that a failing
// write leaves nothing behind and does not disturb the other writes of its
// batch; business refusals (not found, invalid move) return before writing.
type writeFn func(ctx context.Context) error

type writeOp struct {
	fn   writeFn
	done chan error // buffered; receives the op's own error or the commit's
	err  error      // the op's own result, kept until the commit is durable
	lazy bool       // answered once committed, made durable by the next fsync
	// committed, if set, is called by the committer once the op's
	// transaction is committed (visible, not yet durable), if the op
	// succeeded; the op is answered later, when durable, as usual.
	committed func()
	// rows, if set, may write this op together with the ops of the same
	// rows next to it in the batch, in one statement (see rowBatch); item
	// is this op's part of it. fn is still the op alone.
	rows *rowBatch
	item any
}

// A rowBatch writes the items of several consecutive ops of one kind (a
// received chat each, say) in one statement, which costs far less than a
// statement each: SQLite prepares its cursors, constraint checks and
// journal once. write either writes every item and records each op's
// result for its caller, or fails having written nothing (a statement is
// atomic); the writer then runs each op's own fn, so that one op's
// failure is its own and not its neighbours'.
type rowBatch struct {
	max   int // items per statement at most
	write func(ctx context.Context, items []any) error
}

// writer funnels every write of the store through two goroutines, a
// pipeline of group commits:
//
//   - the committer takes every operation waiting in the bounded queue, runs
//     them in one transaction and commits it. Its connection runs with
//     synchronous=NORMAL, so COMMIT writes the WAL frames but does not wait
//     for the disk;
//   - the syncer takes the committed batches (every one waiting), makes the
//     write-ahead log durable with one fsync of the -wal file, and only then
//     answers each caller.
//
// So a call is durable when it returns (as with synchronous=FULL), the
// callers of several transactions share one fsync, and the committer runs
// the next transaction while the syncer waits for the disk. It runs one
// ahead at most: a committed transaction waits in the committer's hand
// until the syncer takes it (handOver), and the writes that arrive
// meanwhile gather in the queue, so the next transaction takes every
// write that came during the fsync in flight and is committed as soon as
// that fsync ends, while the syncer makes the previous one durable.
// So the transactions that wait for an fsync are about as many as the
// fsyncs, not as many as the committer could run on its own.
//
// A lazy write (doLazy) is the exception: it is answered as soon as its
// transaction is committed (which may wait for the fsync in flight, as
// every transaction may), and becomes durable with the next fsync of the
// WAL (the next durable write's, or the checkpointer's, which syncs the WAL
// before copying it). A batch of lazy writes alone costs no fsync. Only
// writes whose loss on a power cut is harmless may be lazy (see MarkStates);
// a killed process loses nothing either way, the kernel holds the WAL. SQLite's own
// guarantees make this safe: in WAL mode a commit is a frame appended to the
// -wal file, which recovery replays up to the last valid commit frame, and
// a checkpoint syncs the WAL before copying frames into the database.
type writer struct {
	// beforeCommit, if set, runs in each transaction after its operations
	// and before COMMIT; an error rolls the whole batch back.
	beforeCommit func(ctx context.Context) error
	// rolledBack, if set, runs after a transaction was rolled back.
	rolledBack func()

	conn *sql.Conn
	// tx holds BEGIN IMMEDIATE, COMMIT and ROLLBACK prepared on conn
	// (writer goroutine only): each transaction would prepare them again.
	tx   map[string]*sql.Stmt
	wal  *os.File // the database's -wal file, opened only to fsync it
	log  *slog.Logger
	q    chan *writeOp
	sync chan []*writeOp // unbuffered: committed batches, handed to the syncer (handOver)
	kick chan struct{}   // tells the checkpointer the WAL grew

	mu      sync.RWMutex // held for reading while sending on q; for writing to close q
	closed  bool
	closing chan struct{} // closed first by close, unblocks senders waiting on a full queue
	stopped chan struct{} // closed when the syncer returns (the committer returned before)
	opPool  sync.Pool

	commits atomic.Int64 // transactions committed
	syncs   atomic.Int64 // fsyncs of the WAL that answered callers
	syncDur atomic.Int64 // nanoseconds spent in them

	// syncFn makes the WAL durable: datasync, or a failing stand-in in tests.
	syncFn atomic.Pointer[func(*os.File) error]
	writes atomic.Int64 // operations in the committed transactions
	rowOps atomic.Int64 // operations written by multi-row statements (rowBatch)
	// syncFailed holds the syncer's first fsync error: lazy writes, which
	// do not wait for the syncer, are refused with it too.
	syncFailed atomic.Pointer[error]
}

// WriterStats counts the writer's work since Open.
type WriterStats struct {
	Commits  int64         // transactions committed
	Syncs    int64         // fsyncs of the write-ahead log
	SyncTime time.Duration // time spent in them
	Writes   int64         // write calls the transactions carried
	// RowWrites counts the write calls stored together with others in one
	// statement (a multi-row INSERT of messages), committed or not.
	RowWrites int64
}

// Stats reports how many writes the writer committed, in how many
// transactions and with how many fsyncs; Writes/Syncs is the mean number of
// callers one fsync answered.
func (s *Store) Stats() WriterStats {
	return WriterStats{Commits: s.w.commits.Load(), Syncs: s.w.syncs.Load(), Writes: s.w.writes.Load(),
		SyncTime: time.Duration(s.w.syncDur.Load()), RowWrites: s.w.rowOps.Load()}
}

func startWriter(conn *sql.Conn, wal *os.File, beforeCommit func(context.Context) error, rolledBack func(), logger *slog.Logger) *writer {
	w := &writer{
		beforeCommit: beforeCommit,
		rolledBack:   rolledBack,
		conn:         conn,
		tx:           make(map[string]*sql.Stmt, 3),
		wal:          wal,
		log:          logger,
		q:            make(chan *writeOp, queueSize),
		sync:         make(chan []*writeOp),
		kick:         make(chan struct{}, 1),
		closing:      make(chan struct{}),
		stopped:      make(chan struct{}),
	}
	w.opPool.New = func() any { return &writeOp{done: make(chan error, 1)} }
	fn := datasync
	w.syncFn.Store(&fn)
	go w.commitLoop()
	go w.syncLoop()
	return w
}

// do runs fn in the writer and waits until its transaction is durable.
// When ctx ends first, do returns ctx's error; the write may still be
// committed later.
func (w *writer) do(ctx context.Context, fn writeFn) error {
	return w.run(ctx, fn, false, nil, nil, nil)
}

// doRow is do for an op that rows may write together with its neighbours
// (item is its part); fn writes it alone.
func (w *writer) doRow(ctx context.Context, rows *rowBatch, item any, fn writeFn, committed func()) error {
	return w.run(ctx, fn, false, committed, rows, item)
}

// doStaged is do, calling committed (from the writer's goroutine: it must
// not wait for the store) once the write is committed and before it is
// durable, if it succeeded.
func (w *writer) doStaged(ctx context.Context, fn writeFn, committed func()) error {
	return w.run(ctx, fn, false, committed, nil, nil)
}

// doLazy runs fn in the writer and waits until its transaction is
// committed, not until it is durable: see the writer's doc comment.
func (w *writer) doLazy(ctx context.Context, fn writeFn) error {
	return w.run(ctx, fn, true, nil, nil, nil)
}

func (w *writer) run(ctx context.Context, fn writeFn, lazy bool, committed func(), rows *rowBatch, item any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if lazy {
		if err := w.syncFailed.Load(); err != nil {
			return *err
		}
	}
	op := w.opPool.Get().(*writeOp)
	op.fn, op.lazy, op.committed, op.rows, op.item = fn, lazy, committed, rows, item
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
		op.fn, op.err, op.committed, op.rows, op.item = nil, nil, nil, nil, nil
		w.opPool.Put(op) // only reused once its answer was received
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops accepting writes, lets the writer commit and sync what is
// queued, and waits for both goroutines to return. It must be called once.
func (w *writer) close() {
	// Unblock the callers waiting on a full queue first: they hold mu for
	// reading. Store.Close calls this once.
	close(w.closing)
	w.mu.Lock()
	w.closed = true
	close(w.q)
	w.mu.Unlock()
	<-w.stopped
	for _, st := range w.tx {
		if err := st.Close(); err != nil {
			w.log.Debug("close statement", "err", err)
		}
	}
}

// exec runs one of the transaction statements (BEGIN IMMEDIATE, COMMIT,
// ROLLBACK), prepared the first time. Writer goroutine only.
func (w *writer) exec(ctx context.Context, query string) error {
	st, ok := w.tx[query]
	if !ok {
		var err error
		if st, err = w.conn.PrepareContext(ctx, query); err != nil {
			_, err = w.conn.ExecContext(ctx, query)
			return err
		}
		w.tx[query] = st
	}
	_, err := st.ExecContext(ctx)
	return err
}

func (w *writer) commitLoop() {
	defer close(w.sync)
	for {
		op, ok := <-w.q
		if !ok {
			return
		}
		batch := make([]*writeOp, 1, 64)
		batch[0] = op
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
		var start time.Time
		trace := w.log.Enabled(context.Background(), slog.LevelDebug)
		if trace {
			start = time.Now()
		}
		if w.commit(batch) {
			var took time.Duration
			if trace {
				took = time.Since(start)
			}
			for _, op := range batch {
				if op.committed != nil && op.err == nil {
					op.committed()
				}
			}
			n := len(batch)
			var handover time.Duration
			if durable := w.answerLazy(batch); len(durable) > 0 {
				handover = w.handOver(durable, trace)
			}
			if trace {
				w.log.Debug(LogCommitted, "took", took, "writes", n, "handover", handover)
			}
			select {
			case w.kick <- struct{}{}:
			default:
			}
		}
		if !more {
			return
		}
	}
}

// handOver gives the durable writes of a committed batch to the syncer,
// waiting until it takes them: at once if it is idle, else when the fsync
// in flight ends. That wait is what batches the writes by the fsync: the
// committer does not start the next transaction meanwhile, the writes
// that arrive gather in the queue, and the next transaction takes them
// all, committed while the syncer makes this one durable. A buffer of
// committed transactions between the two lets the committer run several
// small ones during each fsync instead: with 4 (until 2026-12-02) 256
// callers wrote 41-43 writes a transaction and 2.3-2.7 transactions an
// fsync, against 102-111 and 1.04-1.09 with none; bigger buffers cost
// 7-15 % more CPU per message (BENCHMARKS.md). The price is this wait:
// a commit may wait for the fsync in flight (LogCommitted's "handover",
// which this reports when timed), lazy writes included.
func (w *writer) handOver(durable []*writeOp, timed bool) time.Duration {
	if !timed {
		w.sync <- durable
		return 0
	}
	start := time.Now()
	w.sync <- durable
	return time.Since(start)
}

// commit runs one batch in a transaction. It reports whether the batch was
// committed; if not, it has answered the callers.
func (w *writer) commit(batch []*writeOp) bool {
	// The writer's context is not any caller's: a caller that gives up
	// must not abort the others' transaction.
	ctx := context.Background()
	if err := w.exec(ctx, "BEGIN IMMEDIATE"); err != nil {
		w.answerAll(batch, fmt.Errorf("begin transaction: %w", err))
		return false
	}
	w.runOps(ctx, batch)
	if w.beforeCommit != nil {
		if err := w.beforeCommit(ctx); err != nil {
			err = fmt.Errorf("finish transaction of %d writes: %w", len(batch), err)
			w.log.Error("store transaction failed", "writes", len(batch), "err", err)
			if rerr := w.exec(ctx, "ROLLBACK"); rerr != nil {
				w.log.Debug("rollback", "err", rerr)
			}
			w.rollback()
			w.answerAll(batch, err)
			return false
		}
	}
	if err := w.exec(ctx, "COMMIT"); err != nil {
		err = fmt.Errorf("commit %d writes: %w", len(batch), err)
		w.log.Error("store commit failed", "writes", len(batch), "err", err)
		if rerr := w.exec(ctx, "ROLLBACK"); rerr != nil {
			w.log.Debug("rollback after failed commit", "err", rerr)
		}
		w.rollback()
		w.answerAll(batch, err)
		return false
	}
	w.commits.Add(1)
	w.writes.Add(int64(len(batch)))
	return true
}

// runOps runs the ops of a batch in order: a run of consecutive ops of
// one rowBatch in statements of a power of two items, at most its max (so
// that a rowBatch needs few distinct statements), the others (and a run
// whose statement failed) one by one.
func (w *writer) runOps(ctx context.Context, batch []*writeOp) {
	var items []any
	for i := 0; i < len(batch); {
		op := batch[i]
		j := i + 1
		if op.rows != nil {
			for j < len(batch) && batch[j].rows == op.rows && j-i < op.rows.max {
				j++
			}
			j = i + 1<<(bits.Len(uint(j-i))-1)
		}
		if j-i > 1 {
			items = items[:0]
			for _, o := range batch[i:j] {
				items = append(items, o.item)
			}
			if err := op.rows.write(ctx, items); err == nil {
				for _, o := range batch[i:j] {
					o.err = nil
				}
				w.rowOps.Add(int64(j - i))
				i = j
				continue
			} else {
				w.log.Debug("store rows written one by one", "rows", j-i, "err", err)
			}
		}
		for _, o := range batch[i:j] {
			o.err = o.fn(ctx)
		}
		i = j
	}
	clear(items)
}

func (w *writer) rollback() {
	if w.rolledBack != nil {
		w.rolledBack()
	}
}

func (w *writer) syncLoop() {
	defer close(w.stopped)
	// After a failed fsync the kernel may have dropped the dirty pages and
	// report later fsyncs as successful, so one failure fails every later
	// write: nothing is acknowledged that may not be on disk. Reopening the
	// store recovers what the WAL holds.
	var failed error
	for batch := range w.sync {
		batches := [][]*writeOp{batch}
	gather:
		for {
			select {
			case b, ok := <-w.sync:
				if !ok {
					break gather
				}
				batches = append(batches, b)
			default:
				break gather
			}
		}
		err := failed
		if err == nil {
			start := time.Now()
			err = (*w.syncFn.Load())(w.wal)
			took := time.Since(start)
			w.syncDur.Add(int64(took))
			w.syncs.Add(1)
			if w.log.Enabled(context.Background(), slog.LevelDebug) {
				w.log.Debug(LogSynced, "took", took, "batches", len(batches))
			}
			if err != nil {
				err = fmt.Errorf("sync write-ahead log (writes are refused until the store is reopened): %w", err)
				w.log.Error("store sync failed", "err", err)
				failed = err
				w.syncFailed.Store(&failed)
			}
		}
		for _, b := range batches {
			for _, op := range b {
				if err != nil {
					op.done <- err
				} else {
					op.done <- op.err
				}
			}
		}
	}
}

// LogSynced is the message of the debug record the syncer logs after each
// fsync of the write-ahead log that answers callers, with how long it
// "took" and how many committed "batches" it answered (its callers are
// answered right after it). LogCheckpointed is the checkpointer's, after
// each checkpoint (which syncs the log and the database itself), with how
// long it "took". A benchmark reads them to tell the disk's part of a
// message's latency.
const (
	LogSynced       = "write-ahead log synced"
	LogCheckpointed = "checkpoint done"
	// LogCommitted is the committer's, after each transaction, with how
	// long it "took" (BEGIN to COMMIT, no fsync), its "writes", and how
	// long it waited to hand them to the syncer ("handover").
	LogCommitted = "transaction committed"
)

// answerLazy answers the lazy writes of a committed batch and returns the
// others, which wait for the syncer. An answered op may be reused at once,
// so it must leave the batch here.
func (w *writer) answerLazy(batch []*writeOp) []*writeOp {
	durable := batch[:0]
	for _, op := range batch {
		if op.lazy {
			op.done <- op.err
			continue
		}
		durable = append(durable, op)
	}
	return durable
}

func (w *writer) answerAll(batch []*writeOp, err error) {
	for _, op := range batch {
		op.done <- err
	}
}

// checkpointer copies the WAL into the database from its own connection,
// so the writer never pays for it (the writer's connection has automatic
// checkpoints off). PASSIVE checkpoints never block the writer or readers.
type checkpointer struct {
	conn    *sql.Conn
	log     *slog.Logger
	kick    <-chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

// checkpointEvery is the least time between two checkpoints.
const checkpointEvery = 200 * time.Millisecond

func startCheckpointer(conn *sql.Conn, kick <-chan struct{}, logger *slog.Logger) *checkpointer {
	c := &checkpointer{conn: conn, log: logger, kick: kick, stop: make(chan struct{}), stopped: make(chan struct{})}
	go c.run()
	return c
}

func (c *checkpointer) run() {
	defer close(c.stopped)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		var busy, logFrames, done int
		start := time.Now()
		err := c.conn.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &done)
		if err != nil {
			c.log.Warn("store checkpoint failed", "err", err)
		} else if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug(LogCheckpointed, "took", time.Since(start), "frames", done)
		}
		t.Reset(checkpointEvery)
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

func (c *checkpointer) close() error {
	close(c.stop)
	<-c.stopped
	return c.conn.Close()
}
