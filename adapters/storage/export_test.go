package storage

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
)

// SetSyncForTest replaces how s makes its write-ahead log durable, so tests
// can make the fsync fail.
func SetSyncForTest(s *Store, sync func(*os.File) error) { s.w.syncFn.Store(&sync) }

// MigrateToForTest builds a database in dir at schema version v, as an
// older ChatX left it.
func MigrateToForTest(dir string, v int) error {
	db, err := sql.Open("sqlite", filepath.Join(dir, DatabaseFile))
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	return migrate(context.Background(), conn, migrations[:v])
}
