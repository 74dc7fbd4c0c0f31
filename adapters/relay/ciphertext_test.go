package relay_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/internal/turntest"
)

const plaintextMarker = "CHATX-PLAINTEXT-MARKER"

// TestRelaySeesOnlyCiphertext runs QUIC (TLS 1.3) between a client on a
// relayed allocation and a plain UDP peer, through the embedded server,
// sends 64 KiB of a known plaintext both ways, and proves from the
// server's own view of every relayed datagram that the plaintext never
// crossed it — while the same tap does see the marker when it is sent
// bare, so the tap is looking.
func TestRelaySeesOnlyCiphertext(t *testing.T) {
	var (
		mu        sync.Mutex
		datagrams [][]byte
		bytesDir  [2]int // [from peer, to peer]
	)
	tap := func(toPeer bool, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		datagrams = append(datagrams, append([]byte(nil), b...))
		if toPeer {
			bytesDir[1] += len(b)
		} else {
			bytesDir[0] += len(b)
		}
	}
	s := startRelay(t, relay.WithTap(relay.Config{Rate: relay.Unlimited}, tap))
	a := mustAllocate(t, s.Addr().String(), "udp", credsFor(s.Secret(), "alice", time.Now().Add(time.Hour)))

	quicOverRelay(t, a)

	mu.Lock()
	seen := datagrams
	dirs := bytesDir
	mu.Unlock()
	const payload = 64 << 10
	if dirs[0] < payload || dirs[1] < payload {
		t.Fatalf("the tap saw %d bytes from the peer and %d to it, want ≥ %d each way: the traffic did not cross the relay", dirs[0], dirs[1], payload)
	}
	for i, d := range seen {
		if bytes.Contains(d, []byte(plaintextMarker)) {
			t.Fatalf("relayed datagram %d (%d bytes) contains the plaintext marker", i, len(d))
		}
	}
	t.Logf("%d relayed datagrams, %d bytes to the peer and %d from it, none with the plaintext", len(seen), dirs[1], dirs[0])

	// Positive control: a bare datagram with the marker is seen as such.
	bare := listenUDP(t, "127.0.0.1")
	if _, err := a.conn.WriteTo([]byte("bare "+plaintextMarker), bare.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	read(t, bare) // it crossed the relay
	mu.Lock()
	last := datagrams[len(datagrams)-1]
	mu.Unlock()
	if !bytes.Contains(last, []byte(plaintextMarker)) {
		t.Fatal("the tap does not see what the relay forwards")
	}
}

// TestQUICOverCoturn: the same QUIC session runs over an allocation on
// coturn with credentials made the same way, so a third-party relay can
// stand in for the embedded one.
func TestQUICOverCoturn(t *testing.T) {
	secret := "coturn-shared-secret"
	ct := turntest.StartCoturn(t, secret)
	a := mustAllocate(t, ct.Addr, "udp", credsFor([]byte(secret), "alice", time.Now().Add(time.Hour)))
	quicOverRelay(t, a)
}

// quicOverRelay runs a QUIC server on a plain UDP socket at 127.0.0.1 and
// dials it from allocation a's relayed conn, then sends 64 KiB of the
// marker to the peer, which checks it and echoes it back.
func quicOverRelay(t *testing.T, a *allocation) {
	t.Helper()
	// quic-go cannot size the buffers of a relayed conn; that is expected.
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cert, pool := turntest.SelfSigned(t, "peer.test")
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"chatx-relay-test"}, MinVersion: tls.VersionTLS13}
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "peer.test", NextProtos: []string{"chatx-relay-test"}, MinVersion: tls.VersionTLS13}

	peerSock := listenUDP(t, "127.0.0.1")
	peerTr := &quic.Transport{Conn: peerSock}
	t.Cleanup(func() { _ = peerTr.Close() })
	ln, err := peerTr.Listen(serverTLS, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.client.CreatePermission(peerSock.LocalAddr()); err != nil {
		t.Fatalf("CreatePermission: %v", err)
	}
	want := bytes.Repeat([]byte(plaintextMarker), (64<<10)/len(plaintextMarker)+1)[:64<<10]

	peerErr := make(chan error, 1)
	go func() {
		peerErr <- func() error {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return err
			}
			defer conn.CloseWithError(0, "")
			if got := conn.RemoteAddr().String(); got != a.conn.LocalAddr().String() {
				t.Errorf("the peer sees the client at %s, want the relayed address %s", got, a.conn.LocalAddr())
			}
			str, err := conn.AcceptStream(ctx)
			if err != nil {
				return err
			}
			got, err := io.ReadAll(str)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the peer received %d bytes, not the 64 KiB sent", len(got))
			}
			if _, err := str.Write(got); err != nil {
				return err
			}
			if err := str.Close(); err != nil {
				return err
			}
			<-conn.Context().Done() // the client closes when it has read the echo
			return nil
		}()
	}()

	clientTr := &quic.Transport{Conn: a.conn}
	conn, err := clientTr.Dial(ctx, peerSock.LocalAddr(), clientTLS, &quic.Config{})
	if err != nil {
		t.Fatalf("QUIC dial through the relay: %v", err)
	}
	if v := conn.ConnectionState().TLS.Version; v != tls.VersionTLS13 {
		t.Fatalf("TLS version %x, want 1.3", v)
	}
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := str.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := str.Close(); err != nil {
		t.Fatal(err)
	}
	echo, err := io.ReadAll(str)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(echo, want) {
		t.Fatalf("echo of %d bytes differs from the 64 KiB sent", len(echo))
	}
	_ = conn.CloseWithError(0, "done")
	if err := <-peerErr; err != nil {
		t.Fatalf("peer: %v", err)
	}
}
