//go:build !linux

package diskfile

import (
	"errors"
	"os"
)

var errNoWriteback = errors.New("starting write-back early is not supported here")

// StartWriteback and SettleWriteback are Linux system calls; elsewhere
// Finish's fsync does all of the writing.
func StartWriteback(*os.File, int64, int64) error  { return errNoWriteback }
func SettleWriteback(*os.File, int64, int64) error { return errNoWriteback }
