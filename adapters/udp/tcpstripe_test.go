package udp_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// rawTCP dials the receiver's TCP file listener with TLS as me (no
// certificate when me is nil), ALPN alpn; the handshake's error is
// returned, not fatal.
func rawTCP(t *testing.T, me *domain.LocalIdentity, addr, alpn string) (*tls.Conn, error) {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: wait}, Config: rawTLS(t, me, alpn)}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = c.Close() })
	tc := c.(*tls.Conn)
	_ = tc.SetDeadline(time.Now().Add(wait))
	return tc, nil
}

// refusedAfter writes b on c and reads: a refused connection yields no
// byte and ends with an error (the receiver's RST, or the TLS alert of a
// refused handshake) on the write or the read, never a clean end.
// With b nil it writes nothing: the refusal must come at once, before any
// byte of a JOIN (an accepted connection would wait for one).
func refusedAfter(t *testing.T, c *tls.Conn, b []byte) {
	t.Helper()
	var werr error
	if b != nil {
		_, werr = c.Write(b)
	} else {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	}
	got, err := io.ReadAll(c)
	var ne net.Error
	if len(got) > 0 || (werr == nil && err == nil) || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("read % x and %v after writing (%v), want nothing and a reset or alert", got, err, werr)
	}
}

func joinHeader(id domain.TransferID, session []byte, stripe byte) []byte {
	j := append([]byte{3}, id[:]...)
	j = binary.BigEndian.AppendUint32(j, 0)
	return append(append(j, session...), stripe)
}

// A TCP stripe connection is refused without a certificate, with another
// ALPN, for an identity the verifier refuses, and for a JOIN that names no
// waiting stream or is malformed; none disturbs the receiver. A JOIN from
// another (accepted) identity naming a real striped stream's transfer,
// file and session is refused too — JOINs match the main stream's peer —
// and the stream then completes with its own peer's JOIN.
func TestHostileTCPJoin(t *testing.T) {
	mallory, trent, eve := newLocalIdentity(t, "mallory"), newLocalIdentity(t, "trent"), newLocalIdentity(t, "eve")
	bob := newLocalIdentity(t, "bob")
	receiver := newTransportWithTCPFiles(t, bob, notKey{eve.Identity}, udp.Config{StallTimeout: 5 * time.Second, Stripes: 4})
	recv := contract.NewRecordingReceiver(mallory.Identity)
	serveUntilCleanup(t, receiver, recv)
	addr := receiver.TCPFileAddr()
	id := domain.NewTransferID()
	session := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	join := joinHeader(id, session, 1)

	for _, c := range []struct {
		name string
		me   *domain.LocalIdentity
		alpn string
		b    []byte
	}{
		{"no client certificate", nil, udp.ALPNTCPStripe, join},
		{"the QUIC stripe ALPN", &mallory, udp.ALPNStripe, join},
		{"an identity the verifier refuses", &eve, udp.ALPNTCPStripe, nil},
		{"unknown session", &mallory, udp.ALPNTCPStripe, join},
		{"a file REQUEST on a stripe connection", &mallory, udp.ALPNTCPStripe, append(header(2, id, 0, 10), 0)},
		{"stripe number 0", &mallory, udp.ALPNTCPStripe, joinHeader(id, session, 0)},
		{"stripe number 8", &mallory, udp.ALPNTCPStripe, joinHeader(id, session, 8)},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := rawTCP(t, c.me, addr, c.alpn)
			if err != nil {
				return // refused at the handshake: what we want
			}
			refusedAfter(t, conn, c.b)
		})
	}
	if n := recv.Calls(); n != 0 {
		t.Fatalf("the receiver opened %d files for JOIN streams", n)
	}

	t.Run("a JOIN of another identity", func(t *testing.T) {
		content := randomBytes(t, 2*domain.HashChunkSize)
		f := recv.Add(id, 0, content, nil)
		main, err := rawTCP(t, &mallory, addr, udp.ALPNTCP)
		if err != nil {
			t.Fatal(err)
		}
		beginStriped(t, main, id, len(content), session)
		if conn, err := rawTCP(t, &trent, addr, udp.ALPNTCPStripe); err == nil {
			refusedAfter(t, conn, append(join, content[domain.HashChunkSize:]...))
		}
		finishTwoStripes(t, &mallory, addr, main, join, content, f)
	})
}

// notKey accepts every identity but one.
type notKey struct{ id domain.Identity }

func (n notKey) VerifyPeer(_ context.Context, p domain.Identity) error {
	if n.id.SameKey(p.PublicKey()) {
		return domain.ErrUnknownPeer
	}
	return nil
}

// TCP stripe connections count per identity (MaxIncomingStreams, with the
// QUIC stripe connections), not with the TCP file connections: one beyond
// the cap is aborted before any JOIN byte, while a file connection of the
// same identity is still taken, and another identity's stripe connection
// too.
func TestTCPStripeConnectionsAreCappedPerIdentity(t *testing.T) {
	mallory, trent, bob := newLocalIdentity(t, "mallory"), newLocalIdentity(t, "trent"), newLocalIdentity(t, "bob")
	receiver := newTransportWithTCPFiles(t, bob, contract.AcceptAll{}, udp.Config{MaxIncomingStreams: 2, StallTimeout: 10 * time.Second})
	recv := contract.NewRecordingReceiver(mallory.Identity)
	serveUntilCleanup(t, receiver, recv)
	addr := receiver.TCPFileAddr()
	// idle is a connection the receiver took: it waits for our first
	// bytes (its read of them times out here, the receiver's wait is
	// longer).
	idle := func(me *domain.LocalIdentity, alpn string) {
		t.Helper()
		c, err := rawTCP(t, me, addr, alpn)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var ne net.Error
		if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%s connection (%s) ended with %v, want it open", me.Name(), alpn, err)
		}
	}
	idle(&mallory, udp.ALPNTCPStripe)
	idle(&mallory, udp.ALPNTCPStripe)
	c, err := rawTCP(t, &mallory, addr, udp.ALPNTCPStripe)
	if err != nil {
		t.Fatal(err)
	}
	refusedAfter(t, c, nil)
	idle(&mallory, udp.ALPNTCP)
	idle(&trent, udp.ALPNTCPStripe)
}

// A file striped over TCP whose JOIN never comes, or goes silent after a
// few bytes, is cut off within the stall timeout: the receiver aborts the
// file connection and finishes the file with an error (its part kept for
// a resume).
func TestTCPStripeThatStallsEndsTheStream(t *testing.T) {
	mallory, bob := newLocalIdentity(t, "mallory"), newLocalIdentity(t, "bob")
	receiver := newTransportWithTCPFiles(t, bob, contract.AcceptAll{}, udp.Config{StallTimeout: time.Second, Stripes: 4})
	recv := contract.NewRecordingReceiver(mallory.Identity)
	serveUntilCleanup(t, receiver, recv)
	addr := receiver.TCPFileAddr()
	content := make([]byte, 2*domain.HashChunkSize)
	session := []byte{9, 8, 7, 6, 5, 4, 3, 2}
	for _, joins := range []bool{false, true} {
		t.Run(map[bool]string{false: "no JOIN", true: "a JOIN that goes silent"}[joins], func(t *testing.T) {
			id := domain.NewTransferID()
			f := recv.Add(id, 0, content, nil)
			main, err := rawTCP(t, &mallory, addr, udp.ALPNTCP)
			if err != nil {
				t.Fatal(err)
			}
			beginStriped(t, main, id, len(content), session)
			if joins {
				js, err := rawTCP(t, &mallory, addr, udp.ALPNTCPStripe)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := js.Write(append(joinHeader(id, session, 1), content[:1000]...)); err != nil { // then silence
					t.Fatal(err)
				}
			}
			started := time.Now()
			_, werr := main.Write(content[:domain.HashChunkSize]) // stripe 0's unit, complete
			got, err := io.ReadAll(main)
			if werr == nil && err == nil {
				t.Fatalf("the file connection ended cleanly after % x, want it aborted", got)
			}
			f.WaitFinished(t)
			if f.FinishErr() == nil {
				t.Fatal("the file was finished without an error")
			}
			if d := time.Since(started); d > 10*time.Second {
				t.Fatalf("cut off after %v, want about the 1 s stall timeout", d)
			}
		})
	}
}

// A receiver grants no more stripes than the sender's identity may still
// open stripe connections (MaxIncomingStreams, QUIC and TCP together): a
// stripe connection beyond that cap is refused after its handshake, which
// the sender cannot tell from a taken one, so the file would fail on
// every attempt instead of using fewer stripes.
func TestStripesGrantedWithinThePerIdentityCap(t *testing.T) {
	cfg := udp.Config{Stripes: 4, StripeMinSize: 1}
	rcfg := cfg
	rcfg.MaxIncomingStreams = 2
	for _, tcp := range []bool{false, true} {
		t.Run(map[bool]string{false: "quic", true: "tcp"}[tcp], func(t *testing.T) {
			var sender, receiver *udp.Transport
			var peer domain.Peer
			var recv *contract.RecordingReceiver
			var via ports.FileTransport
			if tcp {
				sender, receiver, peer, recv = tcpStripePair(t, cfg, rcfg, false, contract.AcceptAll{})
				via = tcpPath{sender}
			} else {
				sender, receiver, peer, recv = stripePair(t, cfg, rcfg, false)
				via = sender
			}
			sendAndCheck(t, via, peer, recv, 0, randomBytes(t, 4*domain.HashChunkSize))
			if sent, _ := udp.StripedStreams(sender); sent != 1 {
				t.Fatalf("%d striped sends, want 1 (on fewer stripes)", sent)
			}
			if _, got := udp.StripedStreams(receiver); got != 1 {
				t.Fatalf("%d striped receives, want 1", got)
			}
		})
	}
}

// A striped file whose main TCP connection the receiver aborts itself
// (Serve ends, or a newer stream of the same file supersedes it) ends at
// once even while a JOIN connection stays open and silent: the read-ahead
// of every stripe is stopped, not only up to the aborted main stream's.
func TestAbortedTCPStripedStreamEndsWithASilentJoin(t *testing.T) {
	for _, how := range []string{"Serve ends", "a newer stream"} {
		t.Run(how, func(t *testing.T) {
			mallory, bob := newLocalIdentity(t, "mallory"), newLocalIdentity(t, "bob")
			receiver := newTransportWithTCPFiles(t, bob, contract.AcceptAll{}, udp.Config{StallTimeout: time.Minute, Stripes: 4})
			recv := contract.NewRecordingReceiver(mallory.Identity)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- receiver.Serve(ctx, recv) }()
			for !receiver.Serving() {
				time.Sleep(time.Millisecond)
			}
			addr := receiver.TCPFileAddr()
			id, session := domain.NewTransferID(), []byte{5, 5, 5, 5, 5, 5, 5, 5}
			content := make([]byte, 2*domain.HashChunkSize)
			f := recv.Add(id, 0, content, nil)
			main, err := rawTCP(t, &mallory, addr, udp.ALPNTCP)
			if err != nil {
				t.Fatal(err)
			}
			beginStriped(t, main, id, len(content), session)
			js, err := rawTCP(t, &mallory, addr, udp.ALPNTCPStripe)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Write(append(joinHeader(id, session, 1), content[:1000]...)); err != nil { // then silence
				t.Fatal(err)
			}
			for _, got := udp.StripedStreams(receiver); got == 0; _, got = udp.StripedStreams(receiver) {
				time.Sleep(time.Millisecond)
			}
			if how == "Serve ends" {
				cancel()
				select {
				case <-served:
				case <-time.After(5 * time.Second):
					t.Fatal("Serve did not return while a JOIN connection was silent")
				}
				f.WaitFinished(t)
				return
			}
			again, err := rawTCP(t, &mallory, addr, udp.ALPNTCP)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := again.Write(header(2, id, 0, uint64(len(content)))); err != nil {
				t.Fatal(err)
			}
			_ = again.SetReadDeadline(time.Now().Add(5 * time.Second))
			ready := make([]byte, 41)
			if _, err := io.ReadFull(again, ready); err != nil || ready[0] != 0 {
				t.Fatalf("READY % x (%v) to the newer stream, want it within 5 s", ready, err)
			}
		})
	}
}

// A JOIN rides its main stream's carrier: a QUIC JOIN naming a TCP main
// stream's transfer, file and session is refused (0x11, no such striped
// stream), and the stream then completes with its TCP JOIN.
func TestAQUICJoinDoesNotJoinATCPStream(t *testing.T) {
	mallory, bob := newLocalIdentity(t, "mallory"), newLocalIdentity(t, "bob")
	receiver := newTransportWithTCPFiles(t, bob, contract.AcceptAll{}, udp.Config{StallTimeout: 5 * time.Second, Stripes: 4})
	recv := contract.NewRecordingReceiver(mallory.Identity)
	serveUntilCleanup(t, receiver, recv)
	id := domain.NewTransferID()
	session := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	join := joinHeader(id, session, 1)
	content := randomBytes(t, 2*domain.HashChunkSize)
	f := recv.Add(id, 0, content, nil)

	main, err := rawTCP(t, &mallory, receiver.TCPFileAddr(), udp.ALPNTCP)
	if err != nil {
		t.Fatal(err)
	}
	beginStriped(t, main, id, len(content), session)

	conn := rawClientFor(t, mallory, receiver.Endpoints()[0], udp.ALPNStripe)
	_, err = io.ReadAll(openAndWrite(t, conn, join))
	var se *quic.StreamError
	if !errors.As(err, &se) || se.ErrorCode != 0x11 {
		t.Fatalf("the QUIC JOIN ended with %v, want the receiver's reset 0x11", err)
	}

	finishTwoStripes(t, &mallory, receiver.TCPFileAddr(), main, join, content, f)
}

// finishTwoStripes sends a two-unit striped file begun on main: the
// second unit on a TCP stripe connection of me with join, the first and
// the trailer on main; the receiver must report FINAL OK and finish f.
func finishTwoStripes(t *testing.T, me *domain.LocalIdentity, addr string, main *tls.Conn, join, content []byte, f *contract.RecordingFile) {
	t.Helper()
	js, err := rawTCP(t, me, addr, udp.ALPNTCPStripe)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = js.Write(append(join, content[domain.HashChunkSize:]...))
		_ = js.CloseWrite()
	}()
	if _, err := main.Write(append(content[:domain.HashChunkSize:domain.HashChunkSize], trailer(t, content)...)); err != nil {
		t.Fatal(err)
	}
	_ = main.CloseWrite()
	rest, err := io.ReadAll(main)
	if err != nil || len(rest) < 2 || rest[len(rest)-2] != 2 || rest[len(rest)-1] != 0 {
		t.Fatalf("reports % x (%v), want FINAL OK (02 00) at the end", rest, err)
	}
	f.WaitFinished(t)
	if err := f.FinishErr(); err != nil {
		t.Fatalf("Finish(%v)", err)
	}
}
