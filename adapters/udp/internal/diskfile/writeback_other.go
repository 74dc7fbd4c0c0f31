//go:build !linux

package diskfile

import (
	"errors"
	"os"
)

var errNoWriteback = errors.New("starting write-back early is not supported here")

// startWriteback and settleWriteback are Linux system calls; elsewhere
// Finish's fsync does all of the writing.
func startWriteback(*os.File, int64, int64) error  { return errNoWriteback }
func settleWriteback(*os.File, int64, int64) error { return errNoWriteback }
