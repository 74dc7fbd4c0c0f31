package app

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// The payloads of the group envelope kinds, as the pairwise fan-out writes
// them in ports.Envelope.Group (docs/peer-protocol.md, "Groups"). All
// integers are big-endian.

var errGroupPayload = errors.New("malformed group payload")

// groupMessageWire is KindGroupMessage: group(16) epoch(32) id(16)
// sent_at(i64 Unix ns) body_len(u32) body.
type groupMessageWire struct {
	group  domain.GroupID
	epoch  domain.Epoch
	id     domain.MessageID
	sentAt time.Time
	body   string
}

func (w groupMessageWire) encode() []byte {
	b := make([]byte, 0, 16+32+16+8+4+len(w.body))
	b = append(b, w.group[:]...)
	b = append(b, w.epoch[:]...)
	b = append(b, w.id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(w.sentAt.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(w.body)))
	return append(b, w.body...)
}

func decodeGroupMessage(p []byte) (groupMessageWire, error) {
	d := groupDecoder{b: p}
	var w groupMessageWire
	d.read(w.group[:])
	d.read(w.epoch[:])
	d.read(w.id[:])
	w.sentAt = time.Unix(0, int64(d.u64())).UTC()
	n := int(d.u32())
	if n > domain.MaxMessageBytes {
		return w, fmt.Errorf("%w: body of %d bytes", errGroupPayload, n)
	}
	w.body = string(d.take(n))
	return w, d.end()
}

// groupRefWire is KindGroupAck (group, message id) and KindGroupFile
// (group, transfer id): group(16) id(16).
type groupRefWire struct {
	group domain.GroupID
	id    [16]byte
}

func (w groupRefWire) encode() []byte { return append(append([]byte(nil), w.group[:]...), w.id[:]...) }

func decodeGroupRef(p []byte) (groupRefWire, error) {
	d := groupDecoder{b: p}
	var w groupRefWire
	d.read(w.group[:])
	d.read(w.id[:])
	return w, d.end()
}

// groupAskWire is KindGroupLogAsk: group(16) head(32), the asker's head
// (zero: it has no log of the group).
type groupAskWire struct {
	group domain.GroupID
	head  domain.Epoch
}

func (w groupAskWire) encode() []byte {
	return append(append([]byte(nil), w.group[:]...), w.head[:]...)
}

func decodeGroupAsk(p []byte) (groupAskWire, error) {
	d := groupDecoder{b: p}
	var w groupAskWire
	d.read(w.group[:])
	d.read(w.head[:])
	return w, d.end()
}

// encodeGroupLog is KindGroupLog: group(16) count(u16), then each entry:
// prev(32) op(u8) at(i64 Unix µs) author member_count(u16) members…
// name_len(u16) name sig(64), where an identity is name_len(u8) name key(32).
func encodeGroupLog(group domain.GroupID, entries []domain.GroupEntry) ([]byte, error) {
	b := append([]byte(nil), group[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(entries)))
	for _, e := range entries {
		prev := e.Prev()
		b = append(b, prev[:]...)
		b = append(b, byte(e.Op()))
		b = binary.BigEndian.AppendUint64(b, uint64(e.At().UnixMicro()))
		b = appendWireIdentity(b, e.Author())
		ms := e.Members()
		b = binary.BigEndian.AppendUint16(b, uint16(len(ms)))
		for _, m := range ms {
			b = appendWireIdentity(b, m)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.Name())))
		b = append(b, e.Name()...)
		b = append(b, e.Signature()...)
		if len(b) > ports.MaxGroupPayload {
			return nil, fmt.Errorf("encode log of group %s: %w", group, domain.ErrTooLarge)
		}
	}
	return b, nil
}

func appendWireIdentity(b []byte, id domain.Identity) []byte {
	n := id.Name().String()
	b = append(b, byte(len(n)))
	b = append(b, n...)
	return append(b, id.PublicKey()...)
}

// decodeGroupLog parses a log and checks every entry's shape and signature.
func decodeGroupLog(p []byte) (domain.GroupID, []domain.GroupEntry, error) {
	d := groupDecoder{b: p}
	var group domain.GroupID
	d.read(group[:])
	n := int(d.u16())
	// An entry takes at least 32+1+8+(1+3+32)+2+2+64 bytes.
	if n > domain.MaxGroupLogEntries || n*145 > d.remaining() {
		return group, nil, fmt.Errorf("%w: %d entries", errGroupPayload, n)
	}
	entries := make([]domain.GroupEntry, 0, n)
	for range n {
		var prev domain.Epoch
		d.read(prev[:])
		op := domain.GroupOp(d.u8())
		at := time.UnixMicro(int64(d.u64())).UTC()
		author := d.identity()
		mc := int(d.u16())
		if mc > domain.MaxGroupMembers || mc*36 > d.remaining() {
			return group, nil, fmt.Errorf("%w: entry of %d members", errGroupPayload, mc)
		}
		members := make([]domain.Identity, 0, mc)
		for range mc {
			members = append(members, d.identity())
		}
		name := string(d.take(int(d.u16())))
		sig := d.take(ed25519.SignatureSize)
		if d.err != nil {
			return group, nil, d.err
		}
		e, err := domain.RestoreGroupEntry(group, prev, op, at, author, members, name, sig)
		if err != nil {
			return group, nil, err
		}
		entries = append(entries, e)
	}
	return group, entries, d.end()
}

// groupDecoder reads fields, remembering the first error.
type groupDecoder struct {
	b   []byte
	err error
}

func (d *groupDecoder) remaining() int { return len(d.b) }

func (d *groupDecoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%w: truncated", errGroupPayload)
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *groupDecoder) read(dst []byte) { copy(dst, d.take(len(dst))) }

func (d *groupDecoder) u8() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *groupDecoder) u16() uint16 {
	if p := d.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (d *groupDecoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *groupDecoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *groupDecoder) identity() domain.Identity {
	name := d.take(int(d.u8()))
	key := d.take(ed25519.PublicKeySize)
	if d.err != nil {
		return domain.Identity{}
	}
	u, err := domain.ParseUsername(string(name))
	if err == nil {
		var id domain.Identity
		if id, err = domain.NewIdentity(u, ed25519.PublicKey(key)); err == nil {
			return id
		}
	}
	d.err = fmt.Errorf("%w: identity: %v", errGroupPayload, err)
	return domain.Identity{}
}

func (d *groupDecoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errGroupPayload, len(d.b))
	}
	return d.err
}
