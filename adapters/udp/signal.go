package udp

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Wire formats of the punching signal (through the rendezvous) and probe
// (on the QUIC socket); docs/reachability.md is the reference. All
// integers are big-endian.

// Signal types.
const (
	sigConnect byte = 1 // "connect to me": the initiator's candidates
	sigAnswer  byte = 2 // the responder's candidates, same session
	sigRelay   byte = 3 // "dial me at my relay address"
	// sigRelayBack: "I could not reach your relay: dial mine" (sent once,
	// never answered with another relay signal).
	sigRelayBack byte = 4
)

// Candidate kinds (RFC 8445 vocabulary).
const (
	candHost  byte = 1
	candSrflx byte = 2
	candRelay byte = 3
)

const (
	signalMagic   = "CXSG"
	signalVersion = 1
	signalContext = "chatx-signal/1\x00"
	// magic(4) version(1) type(1) session(16) from(32) to(32) time(8) nat(1) count(1)
	signalHeader = 4 + 1 + 1 + 16 + 32 + 32 + 8 + 1 + 1
	sigSize      = ed25519.SignatureSize
)

type candidate struct {
	Kind byte
	Addr netip.AddrPort
}

func (c candidate) String() string {
	switch c.Kind {
	case candHost:
		return "host " + c.Addr.String()
	case candSrflx:
		return "srflx " + c.Addr.String()
	case candRelay:
		return "relay " + c.Addr.String()
	}
	return "? " + c.Addr.String()
}

// signal is one punching signal.
type signal struct {
	Type    byte
	Session [16]byte
	From    ed25519.PublicKey
	To      ed25519.PublicKey
	At      time.Time // millisecond precision
	NAT     domain.NATMapping
	Cands   []candidate
}

var natCodes = []domain.NATMapping{domain.NATUnknown, domain.NATNone, domain.NATEndpointIndependent, domain.NATEndpointDependent}

func natCode(m domain.NATMapping) byte {
	for i, n := range natCodes {
		if n == m {
			return byte(i)
		}
	}
	return 0
}

// marshal encodes s and signs it with me (whose key must be s.From).
func (s signal) marshal(me domain.LocalIdentity) []byte {
	cands := s.Cands
	if len(cands) > maxCandidates {
		cands = cands[:maxCandidates]
	}
	b := make([]byte, 0, signalHeader+len(cands)*20+sigSize)
	b = append(b, signalMagic...)
	b = append(b, signalVersion, s.Type)
	b = append(b, s.Session[:]...)
	b = append(b, s.From...)
	b = append(b, s.To...)
	b = binary.BigEndian.AppendUint64(b, uint64(s.At.UnixMilli()))
	b = append(b, natCode(s.NAT), byte(len(cands)))
	for _, c := range cands {
		ip := c.Addr.Addr().Unmap()
		b = append(b, c.Kind)
		if ip.Is4() {
			a := ip.As4()
			b = append(b, 4)
			b = append(b, a[:]...)
		} else {
			a := ip.As16()
			b = append(b, 6)
			b = append(b, a[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, c.Addr.Port())
	}
	return append(b, me.Sign(append([]byte(signalContext), b...))...)
}

var errBadSignal = errors.New("bad signal")

// parseSignal decodes a signal and checks its signature against its own
// sender key; whether that key is the expected one is the caller's check.
func parseSignal(b []byte) (signal, error) {
	var s signal
	if len(b) > ports.MaxSignalSize || len(b) < signalHeader+sigSize {
		return s, fmt.Errorf("%w: %d bytes", errBadSignal, len(b))
	}
	if string(b[:4]) != signalMagic {
		return s, fmt.Errorf("%w: magic", errBadSignal)
	}
	if b[4] != signalVersion {
		return s, fmt.Errorf("%w: version %d", errBadSignal, b[4])
	}
	s.Type = b[5]
	if s.Type < sigConnect || s.Type > sigRelayBack {
		return s, fmt.Errorf("%w: type %d", errBadSignal, s.Type)
	}
	copy(s.Session[:], b[6:22])
	s.From = bytes.Clone(b[22:54])
	s.To = bytes.Clone(b[54:86])
	s.At = time.UnixMilli(int64(binary.BigEndian.Uint64(b[86:94])))
	if int(b[94]) >= len(natCodes) {
		return s, fmt.Errorf("%w: nat %d", errBadSignal, b[94])
	}
	s.NAT = natCodes[b[94]]
	n := int(b[95])
	if n > maxCandidates {
		return s, fmt.Errorf("%w: %d candidates", errBadSignal, n)
	}
	body := b[:len(b)-sigSize]
	rest := body[signalHeader:]
	for range n {
		if len(rest) < 2 {
			return s, fmt.Errorf("%w: short candidate", errBadSignal)
		}
		kind, fam := rest[0], rest[1]
		rest = rest[2:]
		if kind < candHost || kind > candRelay {
			return s, fmt.Errorf("%w: candidate kind %d", errBadSignal, kind)
		}
		var ip netip.Addr
		switch fam {
		case 4:
			if len(rest) < 4+2 {
				return s, fmt.Errorf("%w: short candidate", errBadSignal)
			}
			ip = netip.AddrFrom4([4]byte(rest[:4]))
			rest = rest[4:]
		case 6:
			if len(rest) < 16+2 {
				return s, fmt.Errorf("%w: short candidate", errBadSignal)
			}
			ip = netip.AddrFrom16([16]byte(rest[:16]))
			if ip.Is4In6() {
				return s, fmt.Errorf("%w: mapped IPv4 in an IPv6 candidate", errBadSignal)
			}
			rest = rest[16:]
		default:
			return s, fmt.Errorf("%w: address family %d", errBadSignal, fam)
		}
		port := binary.BigEndian.Uint16(rest[:2])
		rest = rest[2:]
		s.Cands = append(s.Cands, candidate{Kind: kind, Addr: netip.AddrPortFrom(ip, port)})
	}
	if len(rest) != 0 {
		return s, fmt.Errorf("%w: %d trailing bytes", errBadSignal, len(rest))
	}
	if !ed25519.Verify(s.From, append([]byte(signalContext), body...), b[len(b)-sigSize:]) {
		return s, fmt.Errorf("%w: signature", errBadSignal)
	}
	return s, nil
}

// Probe: a non-QUIC datagram (first two bits clear) sent from the QUIC
// socket to a candidate of the peer, or the signed reply to one.
const (
	probeMagic   = "\x1cxpr"
	probeVersion = 1
	probeContext = "chatx-probe/1\x00"
	probeReq     = 1
	probeReply   = 2
	// magic(4) type(1) version(1) session(16) from(32) to(32) nonce(16) echo(16) sig(64)
	probeSize = 4 + 1 + 1 + 16 + 32 + 32 + 16 + 16 + sigSize
)

type probe struct {
	Type    byte
	Session [16]byte
	From    ed25519.PublicKey
	To      ed25519.PublicKey
	Nonce   [16]byte // fresh per probe
	Echo    [16]byte // a reply's copy of the probe's nonce; zero in a probe
}

func isProbe(b []byte) bool { return len(b) >= 4 && string(b[:4]) == probeMagic }

func (p probe) marshal(me domain.LocalIdentity) []byte {
	b := make([]byte, 0, probeSize)
	b = append(b, probeMagic...)
	b = append(b, p.Type, probeVersion)
	b = append(b, p.Session[:]...)
	b = append(b, p.From...)
	b = append(b, p.To...)
	b = append(b, p.Nonce[:]...)
	b = append(b, p.Echo[:]...)
	return append(b, me.Sign(append([]byte(probeContext), b...))...)
}

var errBadProbe = errors.New("bad probe")

// parseProbe decodes a probe and checks its signature against its own
// sender key.
func parseProbe(b []byte) (probe, error) {
	var p probe
	if len(b) != probeSize || !isProbe(b) {
		return p, fmt.Errorf("%w: %d bytes", errBadProbe, len(b))
	}
	p.Type = b[4]
	if p.Type != probeReq && p.Type != probeReply {
		return p, fmt.Errorf("%w: type %d", errBadProbe, p.Type)
	}
	if b[5] != probeVersion {
		return p, fmt.Errorf("%w: version %d", errBadProbe, b[5])
	}
	copy(p.Session[:], b[6:22])
	p.From = bytes.Clone(b[22:54])
	p.To = bytes.Clone(b[54:86])
	copy(p.Nonce[:], b[86:102])
	copy(p.Echo[:], b[102:118])
	if p.Type == probeReq && p.Echo != ([16]byte{}) {
		return p, fmt.Errorf("%w: echo in a request", errBadProbe)
	}
	if !ed25519.Verify(p.From, append([]byte(probeContext), b[:118]...), b[118:]) {
		return p, fmt.Errorf("%w: signature", errBadProbe)
	}
	return p, nil
}
