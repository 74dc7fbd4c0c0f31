package udp

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// socketBuffer is what we ask for the UDP socket's receive and send
// buffers: at least the 7.5 MB the quic-go wiki asks for (its own attempt
// stops at 7 MiB), so a burst at full rate is not dropped by the kernel
// before quic-go reads it.
const socketBuffer = 8 << 20

// raiseSocketBuffers sets SO_RCVBUF/SO_SNDBUF and, where the system caps
// those below what we ask (net.core.rmem_max), the FORCE variants, which
// work when we are privileged (CAP_NET_ADMIN). It reports the sizes the
// kernel granted (it reports twice the usable size, as it keeps the
// bookkeeping in the same budget).
func raiseSocketBuffers(c *net.UDPConn) (rcv, snd int, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	cerr := raw.Control(func(fd uintptr) {
		for _, o := range []struct{ opt, force int }{{unix.SO_RCVBUF, unix.SO_RCVBUFFORCE}, {unix.SO_SNDBUF, unix.SO_SNDBUFFORCE}} {
			if got, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, o.opt); err == nil && got >= 2*socketBuffer {
				continue
			}
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.opt, socketBuffer)
			if got, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, o.opt); err == nil && got < 2*socketBuffer {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.force, socketBuffer) // fails unless privileged
			}
		}
	})
	if cerr != nil {
		return 0, 0, cerr
	}
	return socketBuffers(c)
}

// socketBuffers reads the usable sizes of the socket's buffers.
func socketBuffers(c *net.UDPConn) (rcv, snd int, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var e1, e2 error
	if cerr := raw.Control(func(fd uintptr) {
		rcv, e1 = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		snd, e2 = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	}); cerr != nil {
		return 0, 0, cerr
	}
	if e1 != nil || e2 != nil {
		return 0, 0, fmt.Errorf("read socket buffer sizes: %v %v", e1, e2)
	}
	return rcv / 2, snd / 2, nil
}
