package udp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/peertls"
)

// ALPN is the application protocol negotiated by TLS; its suffix is the
// protocol version (docs/file-protocol.md).
const ALPN = "chatx-file/1"

// ErrPeerMismatch: a file endpoint presented the expected key under another
// name.
var ErrPeerMismatch = errors.New("peer presented another identity")

// selfSignedCert makes the TLS certificate of our identity: its key is the
// identity key, its CommonName the username.
func selfSignedCert(me domain.LocalIdentity) (tls.Certificate, error) {
	return peertls.Certificate(me)
}

// peerFromState checks the connection state of a handshake (TLS 1.3, ALPN
// chatx-file/1, one self-signed Ed25519 certificate) and returns the
// identity the peer presented.
func peerFromState(cs tls.ConnectionState) (domain.Identity, error) {
	return peertls.PeerIdentity(cs, ALPN)
}

// quicServerTLS is serverTLS offering both protocols of the QUIC listener:
// the peer's connection (ALPN) and stripe connections (ALPNStripe).
func quicServerTLS(cert tls.Certificate) *tls.Config { return serverTLSFor(cert, ALPN, ALPNStripe) }

// peerFromQUICState is peerFromState for either protocol of the QUIC
// listener.
func peerFromQUICState(cs tls.ConnectionState) (domain.Identity, error) {
	return peerFromStateOf(cs, ALPN, ALPNStripe)
}

// peerFromStateOf is peerFromState for whichever of alpns the handshake
// negotiated (the first when none).
func peerFromStateOf(cs tls.ConnectionState, alpns ...string) (domain.Identity, error) {
	want := alpns[0]
	for _, a := range alpns[1:] {
		if cs.NegotiatedProtocol == a {
			want = a
		}
	}
	return peertls.PeerIdentity(cs, want)
}

// serverTLS is the configuration for incoming connections: a client
// certificate is required and checked in VerifyConnection, which runs on
// every handshake; session tickets are off so every connection presents its
// certificate afresh. Whether the identity is welcome is decided after the
// handshake by the PeerVerifier (it may need the directory and a context).
func serverTLS(cert tls.Certificate) *tls.Config { return serverTLSFor(cert, ALPN) }

// serverTLSFor is serverTLS offering the application protocols alpns.
func serverTLSFor(cert tls.Certificate, alpns ...string) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		ClientAuth:             tls.RequireAnyClientCert,
		NextProtos:             alpns,
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := peerFromStateOf(cs, alpns...)
			return err
		},
	}
}

// certError keeps the reason a server certificate was refused; the TLS
// callback runs on quic-go's goroutine.
type certError struct {
	mu  sync.Mutex
	err error
}

func (c *certError) set(err error) { c.mu.Lock(); c.err = err; c.mu.Unlock() }

func (c *certError) get() error { c.mu.Lock(); defer c.mu.Unlock(); return c.err }

// clientTLS is the configuration for dialing want. The chain is not checked
// against any CA (InsecureSkipVerify): VerifyConnection compares the
// server's key and name with want's instead, and records the refusal in
// *refused so the caller can return it as it is (quic-go wraps handshake
// errors): a *domain.KeyChangedError for another key, ErrPeerMismatch for
// the right key under another name.
func clientTLS(cert tls.Certificate, want domain.Identity, refused *certError) *tls.Config {
	return clientTLSFor(cert, want, refused, ALPN)
}

// clientTLSFor is clientTLS for the application protocol alpn.
func clientTLSFor(cert tls.Certificate, want domain.Identity, refused *certError, alpn string) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             []string{alpn},
		ServerName:             "chatx",
		InsecureSkipVerify:     true, // no CA: the identity is checked in VerifyConnection
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			got, err := peertls.PeerIdentity(cs, alpn)
			if err != nil {
				refused.set(err)
				return err
			}
			if !want.SameKey(got.PublicKey()) {
				err := &domain.KeyChangedError{Name: want.Name(), Old: want.Fingerprint(), New: got.Fingerprint()}
				refused.set(err)
				return err
			}
			if !got.Name().Equal(want.Name()) {
				err := fmt.Errorf("%w: expected %s, the certificate names %s", ErrPeerMismatch, want.Name(), got.Name())
				refused.set(err)
				return err
			}
			return nil
		},
	}
}
