//go:build !unix

package lan

import "syscall"

// reusePort does nothing here: only one client per host can listen.
func reusePort(_, _ string, _ syscall.RawConn) error { return nil }
