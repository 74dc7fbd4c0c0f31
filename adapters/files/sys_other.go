//go:build !linux

package files

import (
	"errors"
	"os"
)

var errNoReplaceUnsupported = errors.New("rename without replace is not supported here")

func renameat2NoReplace(*os.Root, string, string) error { return errNoReplaceUnsupported }

func availableBytes(string) (int64, error) {
	return 0, errors.New("free space is not known on this system")
}
