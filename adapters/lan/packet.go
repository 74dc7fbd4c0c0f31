package lan

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/chatx/chatx/domain"
)

// Wire constants of docs/lan-discovery.md. Never change their meaning; a
// new layout takes a new Version.
const (
	Version       = 1
	MaxPacketSize = 1024 // checked before anything is parsed
	MaxCandidates = 16   // per announcement
	// MaxClockSkew is how far an announcement's timestamp may be from the
	// receiver's clock, either way.
	MaxClockSkew = 5 * time.Minute

	headerSize    = 4 + 1 + 1 + 8 + 8 + 8 // magic, version, type, instance, sequence, timestamp
	signatureSize = ed25519.SignatureSize
)

// magic opens every packet: "CHXL".
var magic = [4]byte{'C', 'H', 'X', 'L'}

// signingContext is prefixed to the signed bytes so that no other message
// signed by the identity key (registry proofs, probes) can pass for an
// announcement, nor the reverse.
const signingContext = "chatx-lan-v1\x00"

// PacketType says what a packet announces.
type PacketType uint8

// Packet types.
const (
	TypeAnnounce PacketType = 1 // the sender is here, at these candidates
	TypeGoodbye  PacketType = 2 // the sender instance is leaving; no candidates
)

// CandidateKind says which transport a candidate address serves.
type CandidateKind uint8

// Candidate kinds.
const (
	KindLink CandidateKind = 1 // the message link (TCP)
	KindFile CandidateKind = 2 // the file transport (QUIC over UDP)
)

// Candidate is one address at which the sender listens.
type Candidate struct {
	Kind CandidateKind
	Addr netip.AddrPort // no zone on the wire
}

// Packet is one decoded, signature-checked announcement or goodbye.
type Packet struct {
	Type       PacketType
	Instance   uint64 // random per run of the sender
	Sequence   uint64 // grows with every round the instance sends
	Time       time.Time
	Identity   domain.Identity
	Candidates []Candidate
}

// Decoding errors; every one is wrapped in ErrMalformed or one of the others.
var (
	ErrMalformed  = errors.New("lan: malformed packet")
	ErrVersion    = errors.New("lan: unsupported version")
	ErrTooLarge   = errors.New("lan: packet too large")
	ErrStale      = errors.New("lan: timestamp outside the accepted window")
	ErrBadSigning = errors.New("lan: bad signature")
)

// Encode builds and signs a packet as me. Candidates beyond MaxCandidates
// are dropped; zones are stripped (a zone means nothing to the receiver).
func Encode(me domain.LocalIdentity, p Packet) ([]byte, error) {
	name := me.Name().String()
	if len(name) == 0 || len(name) > 255 {
		return nil, fmt.Errorf("lan: encode: name of %d bytes", len(name))
	}
	cands := p.Candidates
	if len(cands) > MaxCandidates {
		cands = cands[:MaxCandidates]
	}
	if p.Type == TypeGoodbye {
		cands = nil
	}
	b := make([]byte, 0, MaxPacketSize)
	b = append(b, magic[:]...)
	b = append(b, Version, byte(p.Type))
	b = binary.BigEndian.AppendUint64(b, p.Instance)
	b = binary.BigEndian.AppendUint64(b, p.Sequence)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Time.UnixMilli()))
	b = append(b, byte(len(name)))
	b = append(b, name...)
	b = append(b, me.PublicKey()...)
	b = append(b, byte(len(cands)))
	for _, c := range cands {
		ip := c.Addr.Addr().WithZone("")
		switch {
		case ip.Is4() || ip.Is4In6():
			b = append(b, byte(c.Kind), 4)
			a := ip.Unmap().As4()
			b = append(b, a[:]...)
		case ip.Is6():
			b = append(b, byte(c.Kind), 6)
			a := ip.As16()
			b = append(b, a[:]...)
		default:
			return nil, fmt.Errorf("lan: encode: invalid candidate %v", c.Addr)
		}
		b = binary.BigEndian.AppendUint16(b, c.Addr.Port())
	}
	b = append(b, me.Sign(signedBytes(b))...)
	if len(b) > MaxPacketSize {
		return nil, fmt.Errorf("lan: encode: %d bytes: %w", len(b), ErrTooLarge)
	}
	return b, nil
}

func signedBytes(body []byte) []byte {
	return append([]byte(signingContext), body...)
}

// Decode parses b, checks its signature against the key inside and its
// timestamp against now (±MaxClockSkew). It allocates nothing before the
// size is checked and never reads past b.
func Decode(b []byte, now time.Time) (Packet, error) {
	if len(b) > MaxPacketSize {
		return Packet{}, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	if len(b) < headerSize+1 || [4]byte(b[:4]) != magic {
		return Packet{}, fmt.Errorf("%w: no magic", ErrMalformed)
	}
	if b[4] != Version {
		return Packet{}, fmt.Errorf("%w: %d", ErrVersion, b[4])
	}
	p := Packet{Type: PacketType(b[5])}
	if p.Type != TypeAnnounce && p.Type != TypeGoodbye {
		return Packet{}, fmt.Errorf("%w: type %d", ErrMalformed, b[5])
	}
	p.Instance = binary.BigEndian.Uint64(b[6:])
	p.Sequence = binary.BigEndian.Uint64(b[14:])
	ms := int64(binary.BigEndian.Uint64(b[22:]))
	r := reader{b: b, off: headerSize}
	nameLen := int(r.byte())
	name := r.bytes(nameLen)
	key := r.bytes(ed25519.PublicKeySize)
	n := int(r.byte())
	if r.err != nil {
		return Packet{}, r.err
	}
	if n > MaxCandidates {
		return Packet{}, fmt.Errorf("%w: %d candidates", ErrMalformed, n)
	}
	if p.Type == TypeGoodbye && n != 0 {
		return Packet{}, fmt.Errorf("%w: goodbye with candidates", ErrMalformed)
	}
	if n > 0 {
		p.Candidates = make([]Candidate, 0, n)
	}
	for range n {
		kind := CandidateKind(r.byte())
		fam := r.byte()
		var ip netip.Addr
		switch fam {
		case 4:
			ip = netip.AddrFrom4([4]byte(r.bytes(4)))
		case 6:
			ip = netip.AddrFrom16([16]byte(r.bytes(16)))
		default:
			if r.err == nil {
				r.err = fmt.Errorf("%w: address family %d", ErrMalformed, fam)
			}
		}
		port := r.uint16()
		if r.err != nil {
			return Packet{}, r.err
		}
		if kind != KindLink && kind != KindFile {
			return Packet{}, fmt.Errorf("%w: candidate kind %d", ErrMalformed, kind)
		}
		if port == 0 || ip.Is4In6() {
			return Packet{}, fmt.Errorf("%w: candidate %v port %d", ErrMalformed, ip, port)
		}
		p.Candidates = append(p.Candidates, Candidate{Kind: kind, Addr: netip.AddrPortFrom(ip, port)})
	}
	bodyEnd := r.off
	sig := r.bytes(signatureSize)
	if r.err != nil {
		return Packet{}, r.err
	}
	if r.off != len(b) {
		return Packet{}, fmt.Errorf("%w: %d bytes after the signature", ErrMalformed, len(b)-r.off)
	}
	u, err := domain.ParseUsername(string(name))
	if err != nil || u.String() != string(name) {
		return Packet{}, fmt.Errorf("%w: name is not a normalised username", ErrMalformed)
	}
	if err := domain.Verify(ed25519.PublicKey(key), signedBytes(b[:bodyEnd]), sig); err != nil {
		return Packet{}, fmt.Errorf("%w: %v", ErrBadSigning, err)
	}
	if p.Identity, err = domain.NewIdentity(u, ed25519.PublicKey(key)); err != nil {
		return Packet{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	p.Time = time.UnixMilli(ms)
	if d := p.Time.Sub(now); d > MaxClockSkew || d < -MaxClockSkew {
		return Packet{}, fmt.Errorf("%w: %s off", ErrStale, d.Round(time.Second))
	}
	return p, nil
}

// reader reads big-endian fields, remembering the first overrun.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return make([]byte, n) // callers convert to fixed arrays
	}
	if n > len(r.b)-r.off {
		r.err = fmt.Errorf("%w: truncated", ErrMalformed)
		return make([]byte, n)
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) byte() byte { return r.bytes(1)[0] }

func (r *reader) uint16() uint16 { return binary.BigEndian.Uint16(r.bytes(2)) }
