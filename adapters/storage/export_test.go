package storage

import "os"

// SetSyncForTest replaces how s makes its write-ahead log durable, so tests
// can make the fsync fail.
func SetSyncForTest(s *Store, sync func(*os.File) error) { s.w.syncFn.Store(&sync) }
