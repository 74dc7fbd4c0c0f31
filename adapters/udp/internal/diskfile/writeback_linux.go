//go:build linux

package diskfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing n bytes of f at off to
// disk without waiting (SYNC_FILE_RANGE_WRITE); fsync still makes them
// durable.
func startWriteback(f *os.File, off, n int64) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE) }); err != nil {
		return err
	}
	return serr
}
