package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/wire"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/chatx/chatx/ports"
)

// ProfileDir is the directory of one profile: it holds the database and the
// identity key file.
type ProfileDir string

// DatabaseFile is the name of the database inside the profile directory.
const DatabaseFile = "chatx.db"

// Limits of the writer.
const (
	// queueSize bounds how many writes may wait for the writer; callers
	// beyond it block (or give up with their context).
	queueSize = 8192
	// maxBatch bounds how many writes share one transaction.
	maxBatch = 4096
	// readConns bounds the read-only connections.
	readConns = 4
)

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("storage: store is closed")

// ProviderSet provides the store, its trust and transfer views and the key
// store, and binds them to their ports. The injector supplies a ProfileDir,
// a Passphrase and a *slog.Logger.
var ProviderSet = wire.NewSet(
	Open,
	wire.Bind(new(ports.MessageStore), new(*Store)),
	NewContacts,
	wire.Bind(new(ports.TrustStore), new(*Contacts)),
	NewTransfers,
	wire.Bind(new(ports.TransferStore), new(*Transfers)),
	NewQuarantine,
	wire.Bind(new(ports.QuarantineStore), new(*Quarantine)),
	NewKeyStore,
	wire.Bind(new(ports.KeyStore), new(*KeyStore)),
)

var (
	_ ports.MessageStore    = (*Store)(nil)
	_ ports.TrustStore      = (*Contacts)(nil)
	_ ports.TransferStore   = (*Transfers)(nil)
	_ ports.QuarantineStore = (*Quarantine)(nil)
)

// Store is the profile's database. It implements ports.MessageStore;
// NewContacts and NewTransfers give the trust and transfer stores kept in
// the same database (their method names clash, so they are distinct types).
// It is safe for concurrent use.
type Store struct {
	log     *slog.Logger
	writeDB *sql.DB
	readDB  *sql.DB
	w       *writer
	cp      *checkpointer
	wal     *os.File
	ws      *writeStmts
	// The search index is filled in batches (see indexNewMessages). Only
	// the writer goroutine touches these four: indexDirty says messages
	// past the index may be stored, indexRows counts those inserted since
	// the last pass, indexAt is when that pass ran, and indexNow asks for
	// a pass at this commit (Search).
	indexDirty bool
	indexRows  int
	indexAt    time.Time
	indexNow   bool
	// unindexed is indexDirty for readers: Search makes the writer catch
	// up first.
	unindexed atomic.Bool
	rs        *readStmts
	// outRows and inRows write consecutive SaveOutgoing and SaveIncoming
	// of one transaction in one statement (newRowBatches).
	outRows, inRows *rowBatch

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database of the profile in dir,
// migrates it to the current schema and starts its writer. The cleanup
// function closes it; so does Close.
func Open(dir ProfileDir, logger *slog.Logger) (*Store, func(), error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s, err := open(string(dir), logger)
	if err != nil {
		return nil, nil, err
	}
	return s, func() {
		if err := s.Close(); err != nil {
			logger.Error("close store", "err", err)
		}
	}, nil
}

func open(dir string, logger *slog.Logger) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open store: empty profile directory")
	}
	if strings.ContainsAny(dir, "?#") {
		return nil, fmt.Errorf("open store: profile directory %q: '?' and '#' are not supported in the path", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: create profile directory: %w", err)
	}
	path := filepath.Join(dir, DatabaseFile)
	// SQLite creates the -wal and -shm files with the mode of the database
	// file, so creating it owner-only first keeps all three private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open store: create %s: %w", path, err)
	}
	if err := checkPrivate(path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	// The writer's connection commits with synchronous(NORMAL) and no
	// automatic checkpoints: the writer's syncer fsyncs the -wal file before
	// answering callers, and the checkpointer copies the WAL into the
	// database from its own connection (see writer). Its statement
	// journals (what undoes one failed statement inside the writer's
	// transaction) are kept in memory: in a temporary file they cost a
	// pwrite per page every INSERT touched, a tenth of the writer's CPU.
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	writeDB, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&"+common+
		"&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)&_pragma=cache_size(-16384)&_pragma=temp_store(MEMORY)")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	writeDB.SetMaxOpenConns(2) // the writer's and the checkpointer's
	writeDB.SetMaxIdleConns(2)
	writeDB.SetConnMaxLifetime(0)

	ctx := context.Background()
	conn, err := writeDB.Conn(ctx)
	if err != nil {
		writeDB.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	var cleanups []func() error
	fail := func(err error) (*Store, error) {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		conn.Close()
		writeDB.Close()
		return nil, err
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fail(fmt.Errorf("open store %s: read journal mode: %w", path, err))
	}
	if !strings.EqualFold(mode, "wal") {
		return fail(fmt.Errorf("open store %s: journal mode is %q, want wal", path, mode))
	}
	if err := migrate(ctx, conn, migrations); err != nil {
		return fail(fmt.Errorf("open store %s: %w", path, err))
	}
	// SQLite made the -wal file when the connection opened; it keeps it
	// (same inode) while any connection is open.
	wal, err := os.OpenFile(path+"-wal", os.O_RDWR, 0)
	if err != nil {
		return fail(fmt.Errorf("open store %s: open write-ahead log: %w", path, err))
	}
	cleanups = append(cleanups, wal.Close)
	if err := wal.Sync(); err != nil { // makes the migrations durable
		return fail(fmt.Errorf("open store %s: sync write-ahead log: %w", path, err))
	}
	if err := checkPrivate(path + "-wal"); err != nil {
		return fail(fmt.Errorf("open store: %w", err))
	}
	if err := syncDir(dir); err != nil { // the new files' directory entries
		return fail(fmt.Errorf("open store %s: %w", path, err))
	}
	ws, err := prepareWrites(ctx, conn)
	if err != nil {
		return fail(fmt.Errorf("open store %s: %w", path, err))
	}
	cleanups = append(cleanups, ws.close)
	cpConn, err := writeDB.Conn(ctx)
	if err != nil {
		return fail(fmt.Errorf("open store %s: %w", path, err))
	}
	cleanups = append(cleanups, cpConn.Close)

	readDB, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		return fail(fmt.Errorf("open store %s: %w", path, err))
	}
	readDB.SetMaxOpenConns(readConns)
	readDB.SetMaxIdleConns(readConns)
	rs, err := prepareReads(ctx, readDB)
	if err != nil {
		readDB.Close()
		return fail(fmt.Errorf("open store %s: %w", path, err))
	}

	s := &Store{log: logger, writeDB: writeDB, readDB: readDB, ws: ws, rs: rs, wal: wal,
		indexDirty: true} // a crash may have left messages past the index
	s.unindexed.Store(true)
	s.newRowBatches()
	s.w = startWriter(conn, wal, s.indexNewMessages, s.indexRolledBack, logger)
	s.cp = startCheckpointer(cpConn, s.w.kick, logger)
	logger.Debug("store opened", "path", path)
	return s, nil
}

// Batches of the search index: a pass runs when indexBatchRows messages
// wait for it or indexEvery has passed since the last one, at the end of a
// transaction that stored messages, and always before a Search.
const (
	indexEvery     = 100 * time.Millisecond
	indexBatchRows = 4096
)

// indexNewMessages runs before each commit: it adds the messages past the
// index to it, in one statement, when a pass is due. FTS5 flushes a
// segment per transaction that touches it, and merges them later, so one
// pass for many transactions' messages costs far less than one for each
// (it was a sixth of the CPU of two clients messaging at full speed).
// The index and fts_progress move in the same transaction, so a crash
// leaves at worst messages past the index, which the next pass adds.
func (s *Store) indexNewMessages(ctx context.Context) error {
	if !s.indexDirty {
		return nil
	}
	if !s.indexNow && s.indexRows < indexBatchRows && time.Since(s.indexAt) < indexEvery {
		return nil
	}
	if _, err := s.ws.indexNew.ExecContext(ctx); err != nil {
		return fmt.Errorf("index new messages: %w", err)
	}
	if _, err := s.ws.indexProgress.ExecContext(ctx); err != nil {
		return fmt.Errorf("index new messages: %w", err)
	}
	s.indexDirty, s.indexNow, s.indexRows, s.indexAt = false, false, 0, time.Now()
	s.unindexed.Store(false)
	return nil
}

// indexRolledBack runs when a transaction was rolled back: a pass it made
// is undone, so the messages committed before it are past the index again.
func (s *Store) indexRolledBack() {
	s.indexDirty = true
	s.unindexed.Store(true)
}

// messageStored tells the indexer that the writer's transaction stored a
// message. Writer goroutine only.
func (s *Store) messageStored() {
	s.indexDirty = true
	s.indexRows++
	s.unindexed.Store(true)
}

// catchUpIndex makes the writer index every stored message, if some may
// be past the index, before a search reads it.
func (s *Store) catchUpIndex(ctx context.Context) error {
	if !s.unindexed.Load() {
		return nil
	}
	return s.w.do(ctx, func(context.Context) error {
		s.indexNow = true
		return nil
	})
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// checkPrivate refuses a file that others can read or write.
func checkPrivate(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, want 0600 (run: chmod 600 %s)", ErrInsecurePermissions, path, perm, path)
	}
	return nil
}

// Close drains the pending writes, stops the writer and closes the
// database. Calls after the first return the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		s.w.close()
		if err := s.cp.close(); err != nil {
			errs = append(errs, err)
		}
		if err := s.rs.close(); err != nil {
			errs = append(errs, err)
		}
		if err := s.readDB.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := s.ws.close(); err != nil {
			errs = append(errs, err)
		}
		if err := s.w.conn.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := s.writeDB.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := s.wal.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("close store: %w", err)
		}
	})
	return s.closeErr
}
