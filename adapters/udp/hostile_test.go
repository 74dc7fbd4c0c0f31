package udp_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports/contract"
)

// rawClient dials the receiver as identity me with a hand-made certificate
// and speaks the stream protocol byte by byte.
func rawClient(t *testing.T, me domain.LocalIdentity, addr string) *quic.Conn {
	t.Helper()
	return rawClientFor(t, me, addr, udp.ALPN)
}

// rawClientFor is rawClient for the application protocol alpn.
func rawClientFor(t *testing.T, me domain.LocalIdentity, addr, alpn string) *quic.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := quic.DialAddr(ctx, addr, rawTLS(t, &me, alpn), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.CloseWithError(0, "") })
	return conn
}

// rawTLS is a client configuration presenting a hand-made certificate of
// me (none when me is nil) and checking nothing of the server's.
func rawTLS(t *testing.T, me *domain.LocalIdentity, alpn string) *tls.Config {
	t.Helper()
	c := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}, MinVersion: tls.VersionTLS13}
	if me == nil {
		return c
	}
	priv := me.PrivateKey()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: me.Name().String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	c.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}}
	return c
}

// openAndWrite opens a stream on conn, with the test's deadline, and
// writes b on it.
func openAndWrite(t *testing.T, conn *quic.Conn, b []byte) *quic.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = str.SetDeadline(time.Now().Add(wait))
	if _, err := str.Write(b); err != nil {
		t.Fatal(err)
	}
	return str
}

func header(version byte, id domain.TransferID, index uint32, size uint64) []byte {
	b := []byte{version}
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint32(b, index)
	return binary.BigEndian.AppendUint64(b, size)
}

func TestHostileSender(t *testing.T) {
	ed := func() ed25519.PrivateKey { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }
	mallory, err := domain.NewLocalIdentity(domain.MustUsername("mallory"), ed())
	if err != nil {
		t.Fatal(err)
	}
	bob := newLocalIdentity(t, "bob")
	receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{StallTimeout: 5 * time.Second})
	recv := contract.NewRecordingReceiver(mallory.Identity)
	serveUntilCleanup(t, receiver, recv)
	conn := rawClient(t, mallory, receiver.Endpoints()[0])

	content := []byte("0123456789")
	cases := []struct {
		name       string
		send       [][]byte // written in order; the sending side is then closed
		wantAnswer byte
		finishErr  bool // a registered file must be finished with an error
		// finishResult: finished without error, but the receiver reports
		// a failed integrity check (FINAL INTEGRITY).
		finishResult bool
		version      byte // of the REQUEST of a registered file; 0: 2
	}{
		{name: "unknown version", send: [][]byte{header(6, domain.TransferID{}, 0, 10)}, wantAnswer: 2},
		{name: "version 3 asking for 9 stripes", send: [][]byte{append(header(3, domain.TransferID{}, 0, 10), 9, 1, 2, 3, 4, 5, 6, 7, 8)}, wantAnswer: 4},
		{name: "version 3 asking for 1 stripe", send: [][]byte{append(header(3, domain.TransferID{}, 0, 10), 1, 1, 2, 3, 4, 5, 6, 7, 8)}, wantAnswer: 4},
		{name: "version 1 (no file hash after the data)", send: [][]byte{header(1, domain.TransferID{}, 0, 10)}, wantAnswer: 2},
		{name: "index out of range", send: [][]byte{header(2, domain.TransferID{}, 10000, 10)}, wantAnswer: 4},
		{name: "size out of range", send: [][]byte{header(2, domain.TransferID{}, 0, 1<<44+1)}, wantAnswer: 4},
		{name: "unknown transfer", send: [][]byte{header(2, domain.NewTransferID(), 0, 10)}, wantAnswer: 1},
		{name: "too many bytes", send: [][]byte{{0, 0, 0, 0, 0, 0, 0, 0, 0}, append(content, trailer(t, content)...), []byte("extra")}, wantAnswer: 0, finishErr: true},
		{name: "too few bytes", send: [][]byte{{0, 0, 0, 0, 0, 0, 0, 0, 0}, content[:4]}, wantAnswer: 0, finishErr: true},
		{name: "no file hash after the bytes", send: [][]byte{{0, 0, 0, 0, 0, 0, 0, 0, 0}, content}, wantAnswer: 0, finishErr: true},
		{name: "a wrong file hash", send: [][]byte{{0, 0, 0, 0, 0, 0, 0, 0, 0}, content, trailer(t, []byte("something else"))}, wantAnswer: 0, finishResult: true},
		// Version 4 hashes with BLAKE3: a SHA-256 TRAILER (the other kind of
		// hash of the very same bytes) is no match.
		{name: "version 4 with a SHA-256 file hash", version: 4, send: [][]byte{{0, 0, 0, 0, 0, 0, 0, 0, 0}, content, trailer(t, content)}, wantAnswer: 0, finishResult: true},
		{name: "resume at an offset the receiver does not have", send: [][]byte{{0, 0, 0, 0, 0, 0, 0, 0, 5}, content[5:]}, wantAnswer: 0, finishErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f *contract.RecordingFile
			send := c.send
			if c.wantAnswer == 0 {
				id := domain.NewTransferID()
				f = recv.Add(id, 0, content, nil)
				send = append([][]byte{header(max(c.version, 2), id, 0, uint64(len(content)))}, send...)
			}
			str := openAndWrite(t, conn, send[0])
			code := make([]byte, 1)
			if _, err := io.ReadFull(str, code); err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			if code[0] != c.wantAnswer {
				t.Fatalf("answer %d, want %d", code[0], c.wantAnswer)
			}
			if c.wantAnswer != 0 {
				if n, err := str.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
					t.Fatalf("after a refusal the receiver sent %d more bytes (err %v), want the end of the stream", n, err)
				}
				return
			}
			if _, err := io.ReadFull(str, make([]byte, 40)); err != nil {
				t.Fatal(err)
			}
			for _, b := range send[1:] {
				_, _ = str.Write(b)
			}
			_ = str.Close()
			f.WaitFinished(t)
			if c.finishErr == (f.FinishErr() == nil) {
				t.Fatalf("Finish(%v), want an error: %v", f.FinishErr(), c.finishErr)
			}
			if c.finishResult {
				// Report frames: (PROGRESS)*, then FINAL with its status.
				rest, _ := io.ReadAll(str)
				if len(rest) < 2 || rest[len(rest)-2] != 2 || rest[len(rest)-1] != 1 {
					t.Fatalf("reports % x, want FINAL INTEGRITY (02 01) at the end", rest)
				}
			}
		})
	}
}

// beginStriped writes a version-3 REQUEST asking for 2 stripes for size
// bytes, expects READY at 0 granting 2, and writes START at 0 with 2
// stripes.
func beginStriped(t *testing.T, str io.ReadWriter, id domain.TransferID, size int, session []byte) {
	t.Helper()
	req := append(header(3, id, 0, uint64(size)), 2)
	if _, err := str.Write(append(req, session...)); err != nil {
		t.Fatal(err)
	}
	ready := make([]byte, 42)
	if _, err := io.ReadFull(str, ready); err != nil || ready[0] != 0 || ready[41] != 2 {
		t.Fatalf("READY % x (%v), want 2 stripes granted", ready, err)
	}
	if _, err := str.Write([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 2}); err != nil { // START: resume at 0, 2 stripes
		t.Fatal(err)
	}
}

// trailer is the file hash a sender puts after the last byte of b.
func trailer(t *testing.T, b []byte) []byte {
	t.Helper()
	h := domain.NewFileHasher(domain.FileHashSHA256)
	h.Write(b)
	sum := h.Sum()
	return sum[:]
}

// A JOIN stream that names no striped file stream is refused (0x11), one
// that is malformed is a protocol reset (0x12), and neither disturbs the
// receiver; a stripe connection carries nothing else.
func TestHostileJoin(t *testing.T) {
	mallory := newLocalIdentity(t, "mallory")
	bob := newLocalIdentity(t, "bob")
	receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{StallTimeout: 5 * time.Second})
	recv := contract.NewRecordingReceiver(mallory.Identity)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- receiver.Serve(ctx, recv) }()
	defer func() { cancel(); <-served }()
	conn := rawClientFor(t, mallory, receiver.Endpoints()[0], udp.ALPNStripe)

	id := domain.NewTransferID()
	join := append([]byte{3}, id[:]...)
	join = binary.BigEndian.AppendUint32(join, 0)
	join = append(join, 1, 2, 3, 4, 5, 6, 7, 8, 1) // session, stripe 1
	for _, c := range []struct {
		name string
		b    []byte
		code quic.StreamErrorCode
	}{
		{"unknown session", join, 0x11},
		{"a file REQUEST on a stripe connection", append(header(2, id, 0, 10), 0), 0x12},
		{"stripe number 0", append(join[:len(join)-1:len(join)-1], 0), 0x12},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := io.ReadAll(openAndWrite(t, conn, c.b))
			var se *quic.StreamError
			if !errors.As(err, &se) || se.ErrorCode != c.code {
				t.Fatalf("stream ended with %v, want the receiver's reset %#x", err, c.code)
			}
		})
	}
	if n := recv.Calls(); n != 0 {
		t.Fatalf("the receiver opened %d files for JOIN streams", n)
	}
}

// A striped stream whose JOIN never comes, or whose JOIN goes silent, ends
// as STALLED (0x15) within the stall timeout, and the file is finished
// with an error (its part kept for a resume).
func TestStripeThatStallsEndsTheStream(t *testing.T) {
	mallory := newLocalIdentity(t, "mallory")
	bob := newLocalIdentity(t, "bob")
	receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{StallTimeout: time.Second, Stripes: 4})
	recv := contract.NewRecordingReceiver(mallory.Identity)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- receiver.Serve(ctx, recv) }()
	defer func() { cancel(); <-served }()
	conn := rawClient(t, mallory, receiver.Endpoints()[0])
	stripes := rawClientFor(t, mallory, receiver.Endpoints()[0], udp.ALPNStripe)
	content := make([]byte, 2*domain.HashChunkSize)
	session := []byte{9, 8, 7, 6, 5, 4, 3, 2}

	for _, joins := range []bool{false, true} {
		t.Run(map[bool]string{false: "no JOIN", true: "a JOIN that goes silent"}[joins], func(t *testing.T) {
			id := domain.NewTransferID()
			f := recv.Add(id, 0, content, nil)
			str, err := conn.OpenStreamSync(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_ = str.SetDeadline(time.Now().Add(wait))
			beginStriped(t, str, id, len(content), session)
			if joins {
				js, err := stripes.OpenStreamSync(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				join := append([]byte{3}, id[:]...)
				join = binary.BigEndian.AppendUint32(join, 0)
				join = append(append(join, session...), 1)
				if _, err := js.Write(append(join, content[:1000]...)); err != nil { // then silence
					t.Fatal(err)
				}
			}
			_, _ = str.Write(content[:domain.HashChunkSize]) // stripe 0's unit, complete
			_, err = io.ReadAll(str)
			var se *quic.StreamError
			if !errors.As(err, &se) || se.ErrorCode != 0x15 {
				t.Fatalf("stream ended with %v, want the receiver's reset 0x15 (STALLED)", err)
			}
			f.WaitFinished(t)
			if f.FinishErr() == nil {
				t.Fatal("the file was finished without an error")
			}
		})
	}
}
