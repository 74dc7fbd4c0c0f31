//go:build linux

package files

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

var errNoReplaceUnsupported = errors.New("rename without replace is not supported here")

// renameat2NoReplace renames within one folder of root with
// RENAME_NOREPLACE. The folder is opened through the root, so the rename
// cannot leave it; old and new must share their folder (they do: a part sits
// next to its final name).
func renameat2NoReplace(root *os.Root, oldName, newName string) error {
	dir := path.Dir(oldName)
	if path.Dir(newName) != dir {
		return fmt.Errorf("rename %s to %s: not in one folder", oldName, newName)
	}
	df, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer df.Close()
	sc, err := df.SyscallConn()
	if err != nil {
		return err
	}
	var rerr error
	if cerr := sc.Control(func(fd uintptr) {
		rerr = unix.Renameat2(int(fd), path.Base(oldName), int(fd), path.Base(newName), unix.RENAME_NOREPLACE)
	}); cerr != nil {
		return cerr
	}
	switch {
	case rerr == nil:
		return nil
	case errors.Is(rerr, unix.ENOSYS), errors.Is(rerr, unix.EINVAL), errors.Is(rerr, unix.ENOTSUP):
		return errNoReplaceUnsupported
	default:
		return &os.LinkError{Op: "renameat2", Old: oldName, New: newName, Err: rerr}
	}
}

func availableBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
