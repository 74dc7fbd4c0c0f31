package main

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// otherWriteFloors are the disk-write schemes the receiver does not use, for
// comparison: no write-back calls (the flusher threads and the final fsync
// do all of it) and O_DIRECT (no page cache; synchronous, 1 MiB writes).
func otherWriteFloors(dir string, size int64) []floor {
	return []floor{
		{"write to disk, 256 KiB writes, no write-back calls, fsync", func() error { return writePlain(dir+"/floor-plain.bin", size, 0, 256<<10) }},
		{"write to disk with O_DIRECT, 1 MiB writes, fsync", func() error { return writePlain(dir+"/floor-direct.bin", size, syscall.O_DIRECT, 1<<20) }},
	}
}

func writePlain(path string, size int64, flags, bs int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|flags, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	// Page-aligned, as O_DIRECT wants.
	buf, err := unix.Mmap(-1, 0, bs, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		_ = f.Close()
		return err
	}
	defer unix.Munmap(buf)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for off := int64(0); off < size; off += int64(bs) {
		if _, err := f.Write(buf); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
