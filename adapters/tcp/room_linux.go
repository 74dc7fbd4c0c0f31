package tcp

import (
	"crypto/tls"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendRoom returns a report of whether the kernel can take n more bytes
// of nc at once, or nil when that cannot be known (nc does not end in a
// TCP socket: a QUIC stream, a test pipe). It asks for the socket's
// unsent bytes (SIOCOUTQ) and its buffer (SO_SNDBUF, which Linux reports
// doubled for its bookkeeping): room means the queue fills at most a
// quarter of the buffer with n added, far from where a write would block.
func sendRoom(nc net.Conn) func(n int) bool {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	if _, tcp := nc.(*net.TCPConn); !tcp {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func(n int) bool {
		room := false
		raw.Control(func(fd uintptr) {
			queued, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
			if err != nil {
				return
			}
			buf, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
			if err != nil {
				return
			}
			room = 4*(queued+n+tlsOverhead) <= buf
		})
		return room
	}
}
