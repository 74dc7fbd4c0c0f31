package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/chatx/chatx/domain"
)

// BoundFile, in the profile directory, holds the name the registry once
// bound to the profile's key. Until it exists the name is only a wish: a
// profile whose name turned out to be taken may still pick another.
const BoundFile = "bound"

// LockFile, in the profile directory, is held (flock) by the one process
// that uses the profile.
const LockFile = "lock"

// ErrProfileInUse means another process holds the profile's lock.
var ErrProfileInUse = errors.New("profile is in use by another chatx process")

// MarkBound records that the registry bound name to this profile's key.
func MarkBound(dir ProfileDir, name domain.Username) error {
	if err := writeFileAtomic(filepath.Join(string(dir), BoundFile), []byte(name.String()+"\n")); err != nil {
		return fmt.Errorf("record the bound name: %w", err)
	}
	return nil
}

// BoundName returns the name a registry bound to the profile's key, and
// false when none ever did.
func BoundName(dir ProfileDir) (domain.Username, bool, error) {
	data, err := os.ReadFile(filepath.Join(string(dir), BoundFile))
	if errors.Is(err, fs.ErrNotExist) {
		return domain.Username{}, false, nil
	}
	if err != nil {
		return domain.Username{}, false, fmt.Errorf("read the bound name: %w", err)
	}
	u, err := domain.ParseUsername(strings.TrimSpace(string(data)))
	if err != nil {
		return domain.Username{}, false, fmt.Errorf("read the bound name in %s: %w", BoundFile, err)
	}
	return u, true, nil
}

// LockProfile takes the profile's lock for this process, without waiting:
// ErrProfileInUse when another process holds it. The lock is released by
// the returned function, or by the kernel when the process ends (even by
// kill -9), so a crash never leaves a stale lock.
func LockProfile(dir ProfileDir) (unlock func(), err error) {
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return nil, fmt.Errorf("lock profile: %w", err)
	}
	path := filepath.Join(string(dir), LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock profile: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (quit the other one, or use another --profile)", ErrProfileInUse, dir)
		}
		return nil, fmt.Errorf("lock profile %s: %w", dir, err)
	}
	return func() { _ = f.Close() }, nil
}
