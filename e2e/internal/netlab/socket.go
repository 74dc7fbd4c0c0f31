package netlab

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ListenUDP opens a UDP socket inside the host's namespace, for tests of
// the lab itself: a socket stays in the namespace it was made in, whatever
// thread uses it later.
func (h *Host) ListenUDP(addr string) (*net.UDPConn, error) {
	var conn *net.UDPConn
	err := h.inNS(func() error {
		la, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		conn, err = net.ListenUDP("udp4", la)
		return err
	})
	return conn, err
}

// inNS runs f on an OS thread switched into the host's namespace. The
// thread is never switched back: it stays locked, so the runtime ends it
// when the goroutine returns.
func (h *Host) inNS(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := os.Open("/run/netns/" + h.NS)
		if err != nil {
			done <- err
			return
		}
		defer fd.Close()
		if err := unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", h.NS, err)
			return
		}
		done <- f()
	}()
	return <-done
}
