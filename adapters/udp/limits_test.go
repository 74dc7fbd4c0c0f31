package udp_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

func TestBusyReceiverRefusesExtraStreams(t *testing.T) {
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
	receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{MaxIncomingTransfers: 1})
	recv := contract.NewRecordingReceiver(alice.Identity)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- receiver.Serve(ctx, recv) }()
	defer func() { cancel(); <-served }()
	peer := peerOf(bob.Identity, receiver)

	id := domain.NewTransferID()
	first := make([]byte, 2<<20)
	f := recv.Add(id, 0, first, nil)
	src := contract.NewMemorySource(first)
	release := src.GateAfter(1 << 20)
	defer release()
	errc := make(chan error, 1)
	go func() { errc <- sender.Send(ctx, peer, id, 0, src, nil) }()
	// Wait until the first stream holds the only slot (bytes arrived).
	deadline := time.Now().Add(wait)
	for f.Written() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first transfer did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second := []byte("second")
	recv.Add(id, 1, second, nil)
	err := sender.Send(ctx, peer, id, 1, contract.NewMemorySource(second), nil)
	if !errors.Is(err, ports.ErrTransferRefused) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("second Send = %v, want ErrTransferRefused (busy)", err)
	}
	release()
	if err := <-errc; err != nil {
		t.Fatalf("first Send: %v", err)
	}
}

func TestSendToNobodyIsOffline(t *testing.T) {
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{HandshakeTimeout: time.Second})
	// A port where nothing answers QUIC: a transport that was closed.
	gone, cleanup, err := udp.NewTransport(bob, contract.AcceptAll{}, nil, udp.Config{ListenAddr: "127.0.0.1:0"}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	peer := peerOf(bob.Identity, gone)
	cleanup()
	err = sender.Send(context.Background(), peer, domain.NewTransferID(), 0, contract.NewMemorySource([]byte("x")), nil)
	if !errors.Is(err, domain.ErrPeerOffline) {
		t.Fatalf("Send to a closed port = %v, want ErrPeerOffline", err)
	}
}
