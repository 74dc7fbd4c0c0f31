package udp

import (
	"bytes"
	"crypto/ed25519"
	"net/netip"
	"time"

	"github.com/chatx/chatx/domain"
)

// Decoders of peer bytes, exported to the fuzz tests of package udp_test.

// DecodeRequest parses a stream header and encodes it again.
func DecodeRequest(b []byte) (index int, size int64, again []byte, err error) {
	r, err := parseRequest(b)
	if err != nil {
		return 0, 0, nil, err
	}
	return r.Index, r.Size, r.marshal(), nil
}

// DecodeAnswer reads a receiver's answer from b.
func DecodeAnswer(b []byte) (code byte, offset int64, err error) {
	code, offset, _, err = readAnswer(bytes.NewReader(b), 0)
	return code, offset, err
}

// SelfSignedCert is the certificate the transport presents for me.
var SelfSignedCert = selfSignedCert

// Signal and probe types, for the punching tests.
const (
	SigConnect = sigConnect
	SigAnswer  = sigAnswer
	ProbeReq   = probeReq
	ProbeReply = probeReply
)

// NewSignal encodes a signal from me to `to` listing host candidates.
func NewSignal(me domain.LocalIdentity, typ byte, session [16]byte, to domain.Identity, at time.Time, cands ...netip.AddrPort) []byte {
	s := signal{Type: typ, Session: session, From: me.Identity.PublicKey(), To: to.PublicKey(), At: at}
	for _, c := range cands {
		s.Cands = append(s.Cands, candidate{Kind: candHost, Addr: c})
	}
	return s.marshal(me)
}

// DecodeSignal parses a signal and encodes it again with signer (which
// must hold its sender key for the bytes to match).
func DecodeSignal(b []byte, signer domain.LocalIdentity) (typ byte, session [16]byte, cands []netip.AddrPort, again []byte, err error) {
	s, err := parseSignal(b)
	if err != nil {
		return 0, session, nil, nil, err
	}
	for _, c := range s.Cands {
		cands = append(cands, c.Addr)
	}
	return s.Type, s.Session, cands, s.marshal(signer), nil
}

// SignalCandidates are a signal's candidates as the doctor writes them
// ("host 10.0.0.1:4000", "srflx …", "relay …").
func SignalCandidates(b []byte) ([]string, error) {
	s, err := parseSignal(b)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range s.Cands {
		out = append(out, c.String())
	}
	return out, nil
}

// NewProbe encodes a probe (or reply) signed by signer, claiming from.
func NewProbe(signer domain.LocalIdentity, typ byte, session [16]byte, from, to ed25519.PublicKey, nonce, echo [16]byte) []byte {
	p := probe{Type: typ, Session: session, From: from, To: to, Nonce: nonce, Echo: echo}
	return p.marshal(signer)
}

// DecodeProbe parses a probe and checks its signature.
func DecodeProbe(b []byte) (typ byte, session, nonce [16]byte, from ed25519.PublicKey, err error) {
	p, err := parseProbe(b)
	return p.Type, p.Session, p.Nonce, p.From, err
}

// UnsignedProbe parses a probe without checking its signature (a test
// plays a peer that cannot sign).
func UnsignedProbe(b []byte) (typ byte, session, nonce [16]byte, ok bool) {
	if len(b) != probeSize || !isProbe(b) {
		return 0, session, nonce, false
	}
	copy(session[:], b[6:22])
	copy(nonce[:], b[86:102])
	return b[4], session, nonce, true
}

// The pion TURN server of turn_test.go, for the relay-stage tests.
var (
	StartPionTURN   = startPionTURN
	TestRelayServer = relayServer
)

// RefusedSends is how many datagrams the system refused to send and the
// transport counted as lost.
func RefusedSends(t *Transport) int64 { return t.refused.Count() }

// SocketBuffers is what the kernel granted the transport's UDP socket.
func SocketBuffers(t *Transport) (rcv, snd int, err error) { return socketBuffers(t.udp) }

// StripedStreams counts the file streams t sent and received on more than
// one stripe.
func StripedStreams(t *Transport) (sent, received int64) {
	return t.stripedOut.Load(), t.stripedIn.Load()
}

// SpeakOnlyVersion2 makes t answer stream version 3 as an older peer does.
func SpeakOnlyVersion2(t *Transport) { t.onlyVersions = []byte{protocolVersion} }

// SpeakOnlySHA256 makes t a peer of stream versions 2 and 3 (before
// BLAKE3): it answers versions 4 and 5 UNSUPPORTED and sends only 2 and 3.
func SpeakOnlySHA256(t *Transport) {
	t.onlyVersions = []byte{protocolVersion, protocolStriped}
	t.sendSHA256 = true
}
