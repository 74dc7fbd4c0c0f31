package udp

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
)

// A datagram the system refuses to send is a lost datagram, not a dead
// connection (issue 15, item 6). Linux answers sendmsg with EPERM when a
// netfilter rule on the output hook drops the packet (a local firewall,
// nftables `drop` with `numgen random`), and with ENOBUFS when a device
// queue is full. quic-go treats every send error but EMSGSIZE as fatal: its
// send queue returns the error and the connection closes — so a firewall
// that drops 5 % of what we send would end every transfer after its first
// refused packet (quic-go only forgives an EPERM on the very first packet
// of a socket, quic-go/quic-go#4111). Reporting such a send as done hands
// the loss to QUIC's loss recovery, which retransmits, exactly as if the
// packet had been dropped one hop later (tailscale treats it the same way,
// tailscale/tailscale#3641).

// refusedSend reports whether err is the system refusing one datagram.
func refusedSend(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOBUFS)
}

// sendRefusals counts the datagrams the system refused to send; the first
// one is logged (it names the likely cause), the rest only counted.
type sendRefusals struct {
	n   atomic.Int64
	log *slog.Logger
}

// absorb turns a refused send of b into a lost one: it reports b sent.
// Other outcomes pass through.
func (r *sendRefusals) absorb(b []byte, n int, err error) (int, error) {
	if err == nil || !refusedSend(err) {
		return n, err
	}
	if r.n.Add(1) == 1 && r.log != nil {
		r.log.Info("the system refused to send a datagram (a local firewall?); treating refused sends as packet loss", "err", err)
	}
	return len(b), nil
}

// Count is how many sends were refused so far.
func (r *sendRefusals) Count() int64 { return r.n.Load() }

// lossyUDPConn is the UDP socket as quic-go sees it: the *net.UDPConn
// itself (embedded, so quic-go still finds SyscallConn, ReadMsgUDP and
// WriteMsgUDP and keeps batched reads, GSO and ECN), except that a refused
// send is reported as sent.
type lossyUDPConn struct {
	*net.UDPConn
	refused *sendRefusals
}

func (c lossyUDPConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	n, oobn, err := c.UDPConn.WriteMsgUDP(b, oob, addr)
	if err != nil && refusedSend(err) {
		n, err = c.refused.absorb(b, n, err)
		oobn = len(oob)
	}
	return n, oobn, err
}

func (c lossyUDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.UDPConn.WriteTo(b, addr)
	return c.refused.absorb(b, n, err)
}
