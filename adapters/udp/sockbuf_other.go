//go:build !linux

package udp

import "net"

const socketBuffer = 8 << 20

// raiseSocketBuffers asks for socketBuffer bytes each way; quic-go tries
// too and warns when it cannot.
func raiseSocketBuffers(c *net.UDPConn) (rcv, snd int, err error) {
	if err := c.SetReadBuffer(socketBuffer); err != nil {
		return 0, 0, err
	}
	if err := c.SetWriteBuffer(socketBuffer); err != nil {
		return 0, 0, err
	}
	return socketBuffer, socketBuffer, nil
}

func socketBuffers(*net.UDPConn) (rcv, snd int, err error) { return socketBuffer, socketBuffer, nil }
