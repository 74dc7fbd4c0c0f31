package relay_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/internal/turntest"
)

// BenchmarkQUICThroughput moves 4 MiB per iteration on a QUIC stream from
// a client to a plain UDP peer on loopback: directly, through the embedded
// relay (no rate cap), and through coturn (when installed), in one run, so
// the relay's cost reads against direct (BENCHMARKS.md).
func BenchmarkQUICThroughput(b *testing.B) {
	b.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	b.Run("direct", func(b *testing.B) {
		benchQUIC(b, listenUDP(b, "127.0.0.1"), nil)
	})
	b.Run("embedded-relay", func(b *testing.B) {
		s := startRelay(b, relay.Config{Rate: relay.Unlimited})
		a := mustAllocate(b, s.Addr().String(), "udp", credsFor(s.Secret(), "bench", time.Now().Add(time.Hour)))
		benchQUIC(b, a.conn, a)
	})
	b.Run("coturn", func(b *testing.B) {
		ct := turntest.StartCoturnUnlimited(b, "bench-secret")
		a := mustAllocate(b, ct.Addr, "udp", credsFor([]byte("bench-secret"), "bench", time.Now().Add(time.Hour)))
		benchQUIC(b, a.conn, a)
	})
}

func benchQUIC(b *testing.B, clientConn net.PacketConn, a *allocation) {
	const chunk = 4 << 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cert, pool := turntest.SelfSigned(b, "peer.test")
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"chatx-bench"}, MinVersion: tls.VersionTLS13}
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "peer.test", NextProtos: []string{"chatx-bench"}, MinVersion: tls.VersionTLS13}
	peerSock := listenUDP(b, "127.0.0.1")
	peerTr := &quic.Transport{Conn: peerSock}
	b.Cleanup(func() { _ = peerTr.Close() })
	ln, err := peerTr.Listen(serverTLS, &quic.Config{})
	if err != nil {
		b.Fatal(err)
	}
	if a != nil {
		if err := a.client.CreatePermission(peerSock.LocalAddr()); err != nil {
			b.Fatal(err)
		}
	}
	// The peer drains every stream and answers one byte at its end.
	go func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		for {
			str, err := conn.AcceptStream(ctx)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, str); err != nil {
				return
			}
			_, _ = str.Write([]byte{1})
			_ = str.Close()
		}
	}()
	clientTr := &quic.Transport{Conn: clientConn}
	b.Cleanup(func() { _ = clientTr.Close() })
	conn, err := clientTr.Dial(ctx, peerSock.LocalAddr(), clientTLS, &quic.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ResetTimer()
	for b.Loop() {
		str, err := conn.OpenStreamSync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := str.Write(buf); err != nil {
			b.Fatal(err)
		}
		_ = str.Close()
		if _, err := io.ReadFull(str, make([]byte, 1)); err != nil {
			b.Fatal(err)
		}
	}
}
