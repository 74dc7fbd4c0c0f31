package udp_test

import (
	"testing"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

func TestFileTransportContract(t *testing.T) {
	contract.FileTransport(t, func(t *testing.T, v ports.PeerVerifier) contract.FileTransportEnds {
		alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
		sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
		receiver := newTransport(t, bob, v, udp.Config{})
		return contract.FileTransportEnds{
			Sender: sender, SenderIdentity: alice.Identity,
			Receiver: receiver, ReceiverPeer: peerOf(bob.Identity, receiver),
			Path: domain.FilePathUDP,
		}
	})
}

// The same contract over striped transfers: every file of more than one
// 4 MiB chunk travels on up to 4 connections (stream version 3).
func TestFileTransportContractStriped(t *testing.T) {
	striped := udp.Config{Stripes: 4, StripeMinSize: 1}
	contract.FileTransport(t, func(t *testing.T, v ports.PeerVerifier) contract.FileTransportEnds {
		alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
		sender := newTransport(t, alice, contract.AcceptAll{}, striped)
		receiver := newTransport(t, bob, v, striped)
		return contract.FileTransportEnds{
			Sender: sender, SenderIdentity: alice.Identity,
			Receiver: receiver, ReceiverPeer: peerOf(bob.Identity, receiver),
		}
	})
}
