package udp

import (
	"context"
	"net"
	"testing"
)

// StartRestartablePionTURN runs a pion TURN server on a UDP port of
// 127.0.0.1 (UDP only) and returns its address and a restart that stops it
// and starts a fresh one, without allocations, on the same port, as a
// restarted registry's embedded relay would be.
func StartRestartablePionTURN(t *testing.T) (addr string, restart func()) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = conn.LocalAddr().String()
	srv := servePionTURN(t, conn)
	return addr, func() {
		t.Helper()
		_ = srv.Close()
		again, err := net.ListenPacket("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv = servePionTURN(t, again)
	}
}

// EnsureRelay allocates the transport's relay now, as its first relayed
// dial would.
func (t *Transport) EnsureRelay(ctx context.Context) error {
	_, err := t.ensureRelay(ctx)
	return err
}
