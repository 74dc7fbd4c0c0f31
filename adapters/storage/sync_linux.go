package storage

import (
	"errors"
	"os"
	"syscall"
)

// datasync makes f's data durable. fdatasync skips the inode's timestamps,
// which the write-ahead log does not need (SQLite itself uses it on Linux);
// a change of size is still flushed.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
