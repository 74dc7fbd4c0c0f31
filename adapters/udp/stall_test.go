package udp_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/adapters/udp/internal/diskfile"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// serveUntilCleanup serves r on tr until the test ends; it returns once
// tr serves (a stream before that would be answered busy).
func serveUntilCleanup(t *testing.T, tr *udp.Transport, r ports.FileReceiver) {
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- tr.Serve(ctx, r) }()
	t.Cleanup(func() { cancel(); <-served })
	for deadline := time.Now().Add(wait); !tr.Serving(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Serve did not start")
		}
	}
}

// A sender that stops sending in the middle of the data is cut off after
// StallTimeout: the receiver resets the stream with "stalled" (0x15) and
// finishes the file with an error, so it can resume.
func TestReceiverEndsAStalledStream(t *testing.T) {
	mallory, bob := newLocalIdentity(t, "mallory"), newLocalIdentity(t, "bob")
	receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{StallTimeout: 300 * time.Millisecond})
	recv := contract.NewRecordingReceiver(mallory.Identity)
	serveUntilCleanup(t, receiver, recv)
	conn := rawClient(t, mallory, receiver.Endpoints()[0])
	ctx := context.Background()

	content := []byte("0123456789")
	id := domain.NewTransferID()
	f := recv.Add(id, 0, content, nil)
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = str.SetDeadline(time.Now().Add(wait))
	if _, err := str.Write(header(2, id, 0, uint64(len(content)))); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(str, make([]byte, 41)); err != nil { // READY, offset, prefix hash
		t.Fatalf("reading the answer: %v", err)
	}
	if _, err := str.Write(append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0}, content[:4]...)); err != nil { // START at 0, then 4 bytes
		t.Fatal(err)
	}
	// Nothing more, and the stream stays open.
	_, err = io.ReadAll(str)
	var se *quic.StreamError
	if !errors.As(err, &se) || !se.Remote || se.ErrorCode != 0x15 {
		t.Fatalf("the receiver ended the stream with %v, want a reset with code 0x15 (stalled)", err)
	}
	f.WaitFinished(t)
	if f.FinishErr() == nil {
		t.Fatal("the stalled file was finished without an error")
	}
}

// A receiver whose own writes are slow (a slow disk) does not call the
// sender stalled, however long a write takes beyond StallTimeout.
func TestSlowWritesAreNoStall(t *testing.T) {
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{BufferSize: 64 << 10})
	const stall = 200 * time.Millisecond
	receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{StallTimeout: stall, BufferSize: 64 << 10})
	dir := t.TempDir()
	recv := diskfile.New(dir)
	serveUntilCleanup(t, receiver, recv)

	src := dir + "/source.bin"
	sum, err := diskfile.WriteRandom(src, 1<<20, 7)
	if err != nil {
		t.Fatal(err)
	}
	f, err := diskfile.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id := domain.NewTransferID()
	e := recv.Expect(id, 0, "received.bin", sum)
	var once sync.Once
	e.OnWrite(func(int64) { once.Do(func() { time.Sleep(4 * stall) }) }) // the disk takes its time once
	sctx, scancel := context.WithTimeout(context.Background(), wait)
	defer scancel()
	if err := sender.Send(sctx, peerOf(bob.Identity, receiver), id, 0, f, nil); err != nil {
		t.Fatalf("send with a slow first write: %v", err)
	}
	s := e.Sessions()
	if len(s) != 1 || s[0].FinishErr != nil || s[0].Result != nil {
		t.Fatalf("sessions %+v, want one that committed the file", s)
	}
}
