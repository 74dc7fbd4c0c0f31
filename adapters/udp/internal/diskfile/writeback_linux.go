//go:build linux

package diskfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// StartWriteback asks the kernel to start writing n bytes of f at off to
// disk without waiting (SYNC_FILE_RANGE_WRITE); fsync still makes them
// durable.
func StartWriteback(f *os.File, off, n int64) error {
	return control(f, func(fd int) error { return unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE) })
}

// SettleWriteback waits until n bytes of f at off were written out and drops
// them from the page cache.
func SettleWriteback(f *os.File, off, n int64) error {
	return control(f, func(fd int) error {
		const wait = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
		if err := unix.SyncFileRange(fd, off, n, wait); err != nil {
			return err
		}
		return unix.Fadvise(fd, off, n, unix.FADV_DONTNEED)
	})
}

func control(f *os.File, fn func(fd int) error) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := sc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
