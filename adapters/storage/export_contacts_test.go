package storage

import (
	"context"
	"database/sql"
	"path/filepath"
)

// MigrateForTest brings a new database in dir to schema version upTo only,
// as an older ChatX left it, and runs exec on it.
func MigrateForTest(dir string, upTo int, exec ...string) error {
	db, err := sql.Open("sqlite", filepath.Join(dir, DatabaseFile))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := migrate(ctx, conn, migrations[:upTo]); err != nil {
		return err
	}
	for _, q := range exec {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
