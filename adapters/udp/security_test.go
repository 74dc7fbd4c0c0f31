package udp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports/contract"
)

// serve runs tr.Serve until the end of the test.
func serve(t *testing.T, tr *udp.Transport, recv *contract.RecordingReceiver) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- tr.Serve(ctx, recv) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// A stale endpoint now used by someone else must not hide a later endpoint
// where the peer really is.
func TestDialSkipsEndpointWithAnotherKey(t *testing.T) {
	alice, bob, carol := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob"), newLocalIdentity(t, "carol")
	stranger := newTransport(t, carol, contract.AcceptAll{}, udp.Config{})
	receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{})
	strangerRecv := contract.NewRecordingReceiver(alice.Identity)
	serve(t, stranger, strangerRecv)
	recv := contract.NewRecordingReceiver(alice.Identity)
	serve(t, receiver, recv)

	tests := []struct {
		name      string
		endpoints []string
		wantKey   bool
	}{
		{"stale endpoint first, then the peer", append(stranger.Endpoints(), receiver.Endpoints()...), false},
		{"only a stale endpoint", stranger.Endpoints(), true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh sender each time: a cached connection would skip the dial.
			sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
			peer := domain.Peer{Identity: bob.Identity, Online: true, Endpoints: domain.Endpoints{File: tc.endpoints}}
			id := domain.NewTransferID()
			content := bytes.Repeat([]byte{byte(i + 1)}, 64<<10)
			f := recv.Add(id, 0, content, nil)
			err := sender.Send(context.Background(), peer, id, 0, contract.NewMemorySource(content), nil)
			var kc *domain.KeyChangedError
			if tc.wantKey {
				if !errors.As(err, &kc) {
					t.Fatalf("Send = %v, want *domain.KeyChangedError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send = %v, want success through the second endpoint", err)
			}
			f.WaitFinished(t)
			if !bytes.Equal(f.Data(), content) {
				t.Fatal("the file arrived altered")
			}
		})
	}
	if strangerRecv.Calls() != 0 {
		t.Fatal("the stranger at the stale endpoint was asked for a file")
	}
}

// A file endpoint holding the expected key under another name is refused.
func TestDialRefusesRightKeyUnderAnotherName(t *testing.T) {
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	mallory, err := domain.NewLocalIdentity(domain.MustUsername("mallory"), bob.PrivateKey())
	if err != nil {
		t.Fatal(err)
	}
	sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
	impostor := newTransport(t, mallory, contract.AcceptAll{}, udp.Config{})
	recv := contract.NewRecordingReceiver(alice.Identity)
	serve(t, impostor, recv)
	id := domain.NewTransferID()
	content := []byte("for bob only")
	recv.Add(id, 0, content, nil)
	err = sender.Send(context.Background(), peerOf(bob.Identity, impostor), id, 0, contract.NewMemorySource(content), nil)
	if !errors.Is(err, udp.ErrPeerMismatch) {
		t.Fatalf("Send = %v, want ErrPeerMismatch", err)
	}
	if recv.Calls() != 0 {
		t.Fatal("the impostor was asked for a file")
	}
}

// ticketCache is a TLS client session cache that reports every ticket.
type ticketCache struct {
	tls.ClientSessionCache
	put chan struct{}
}

func (c *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	c.ClientSessionCache.Put(key, cs)
	select {
	case c.put <- struct{}{}:
	default:
	}
}

// The listener issues no session tickets: every connection presents and
// has its certificate checked afresh, never resumed.
func TestListenerNeverResumesSessions(t *testing.T) {
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{})
	serve(t, receiver, contract.NewRecordingReceiver(alice.Identity))
	cert, err := udp.SelfSignedCert(alice)
	if err != nil {
		t.Fatal(err)
	}
	cache := &ticketCache{ClientSessionCache: tls.NewLRUClientSessionCache(4), put: make(chan struct{}, 1)}
	conf := &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, NextProtos: []string{udp.ALPN},
		ServerName: "chatx", InsecureSkipVerify: true, ClientSessionCache: cache,
	}
	ep := receiver.Endpoints()[0]
	dial := func() *quic.Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		conn, err := quic.DialAddr(ctx, ep, conf, &quic.Config{})
		if err != nil {
			t.Fatalf("dial %s: %v", ep, err)
		}
		return conn
	}
	first := dial()
	// A ticket, if the server sends one, follows the handshake at once.
	select {
	case <-cache.put:
	case <-time.After(2 * time.Second):
	}
	_ = first.CloseWithError(0, "")
	second := dial()
	defer second.CloseWithError(0, "")
	if second.ConnectionState().TLS.DidResume {
		t.Fatal("the second connection resumed a TLS session")
	}
}

// One identity cannot take every connection slot: connections beyond
// MaxConnectionsPerPeer from the same key are closed with their own
// application error, while other peers still get in.
func TestConnectionsPerPeerAreCapped(t *testing.T) {
	alice, bob, carol := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob"), newLocalIdentity(t, "carol")
	receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{MaxConnectionsPerPeer: 2})
	recv := contract.NewRecordingReceiver(alice.Identity)
	serve(t, receiver, recv)
	ep := receiver.Endpoints()[0]

	// Three bare connections from alice's key: one must be closed with 0x3.
	cert, err := udp.SelfSignedCert(alice)
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, NextProtos: []string{udp.ALPN},
		ServerName: "chatx", InsecureSkipVerify: true,
	}
	var conns []*quic.Conn
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		conn, err := quic.DialAddr(ctx, ep, conf, &quic.Config{KeepAlivePeriod: time.Second})
		cancel()
		if err != nil {
			t.Fatalf("dial %s: %v", ep, err)
		}
		defer conn.CloseWithError(0, "")
		conns = append(conns, conn)
	}
	closed := make(chan int, len(conns))
	for i, c := range conns {
		go func() {
			<-c.Context().Done()
			closed <- i
		}()
	}
	var refused int
	select {
	case refused = <-closed:
	case <-time.After(wait):
		t.Fatal("no connection beyond the per-peer limit was closed")
	}
	var ae *quic.ApplicationError
	if cause := context.Cause(conns[refused].Context()); !errors.As(cause, &ae) || !ae.Remote || ae.ErrorCode != 0x3 {
		t.Fatalf("the extra connection ended with %v, want remote application error 0x3", cause)
	}

	// alice's own transport is refused too while her two slots are held ...
	sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
	id := domain.NewTransferID()
	content := []byte("a file")
	recv.Add(id, 0, content, nil)
	err = sender.Send(context.Background(), peerOf(bob.Identity, receiver), id, 0, contract.NewMemorySource(content), nil)
	if err == nil || !strings.Contains(err.Error(), "too many connections from us") {
		t.Fatalf("Send from a peer at its limit = %v, want refusal for too many connections from us", err)
	}

	// ... while another identity still gets in: the receiver is asked for
	// carol's file (and refuses it: it expects files from alice only).
	other := newTransport(t, carol, contract.AcceptAll{}, udp.Config{})
	calls := recv.Calls()
	_ = other.Send(context.Background(), peerOf(bob.Identity, receiver), id, 0, contract.NewMemorySource(content), nil)
	if recv.Calls() == calls {
		t.Fatal("another identity's connection was refused while alice was at her limit")
	}

	// Once alice closes a connection, her slot is free again.
	for i, c := range conns {
		if i != refused {
			_ = c.CloseWithError(0, "done")
			break
		}
	}
	deadline := time.Now().Add(wait)
	for {
		err = sender.Send(context.Background(), peerOf(bob.Identity, receiver), id, 0, contract.NewMemorySource(content), nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Send after a slot was freed = %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
