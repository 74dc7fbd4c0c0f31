package tcp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Wire constants of docs/peer-protocol.md.
const (
	// ALPN is the TLS application protocol both sides must negotiate.
	ALPN = "chatx/1"
	// FrameVersion is the version byte of every frame this package writes and accepts.
	FrameVersion = 1
	// MaxFrameSize bounds the length field of a frame (version + type + payload).
	MaxFrameSize = 1 << 20
	// frameHeaderSize is the length field plus the version and type bytes.
	frameHeaderSize = 6
	// MaxReasonBytes bounds the reason of a decline or a cancel.
	MaxReasonBytes = 1024
	// MaxManifestNameBytes bounds the display name of an offer.
	MaxManifestNameBytes = 1024
)

// FrameType is the type byte of a frame. Envelope frames use the number of
// their ports.EnvelopeKind; control frames use 0x40 and above.
type FrameType uint8

// Control frame types.
const (
	FrameHello  FrameType = 0x40 // instance ID (16 bytes); first frame each way
	FrameGoAway FrameType = 0x41 // reason code (1 byte); the sender closes the link
	FramePing   FrameType = 0x42 // 8 opaque bytes
	FramePong   FrameType = 0x43 // the ping's 8 bytes echoed
)

// GoAway codes.
const (
	GoAwayRefused   byte = 1 // the acceptor's verifier refused the dialer's identity
	GoAwayDuplicate byte = 2 // another link between the same two peers wins the tie-break
	GoAwayShutdown  byte = 3 // the sender is shutting down
	GoAwayProtocol  byte = 4 // the sender received something it could not parse
	GoAwayBusy      byte = 5 // the acceptor has too many links
)

// Errors of the frame codec. Every decoding failure wraps ErrProtocol.
var (
	ErrProtocol      = errors.New("peer protocol violation")
	ErrFrameTooLarge = fmt.Errorf("%w: frame too large", ErrProtocol)
)

// Frame is one decoded frame. Payload aliases the reader's buffer and is only
// valid until the next call to Next.
type Frame struct {
	Type    FrameType
	Payload []byte
}

// FrameReader reads frames from a stream, checking each length before
// allocating.
type FrameReader struct {
	r   *bufio.Reader
	buf []byte
}

// NewFrameReader reads frames from r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next reads one frame. io.EOF means the stream ended cleanly between frames;
// a stream that ends inside a frame is io.ErrUnexpectedEOF; a bad length or
// version wraps ErrProtocol.
func (fr *FrameReader) Next() (Frame, error) {
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(fr.r, hdr[:4]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n > MaxFrameSize {
		return Frame{}, fmt.Errorf("%w: length %d > %d", ErrFrameTooLarge, n, MaxFrameSize)
	}
	if n < 2 {
		return Frame{}, fmt.Errorf("%w: length %d < 2", ErrProtocol, n)
	}
	if _, err := io.ReadFull(fr.r, hdr[4:6]); err != nil {
		return Frame{}, unexpected(err)
	}
	if hdr[4] != FrameVersion {
		return Frame{}, fmt.Errorf("%w: frame version %d, want %d", ErrProtocol, hdr[4], FrameVersion)
	}
	size := int(n) - 2
	if cap(fr.buf) < size {
		fr.buf = make([]byte, size)
	}
	p := fr.buf[:size]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		return Frame{}, unexpected(err)
	}
	return Frame{Type: FrameType(hdr[5]), Payload: p}, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendFrame appends one frame to dst. The payload must keep the frame
// within MaxFrameSize.
func AppendFrame(dst []byte, t FrameType, payload []byte) ([]byte, error) {
	if len(payload)+2 > MaxFrameSize {
		return dst, fmt.Errorf("%w: payload of %d bytes", ErrFrameTooLarge, len(payload))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)+2))
	dst = append(dst, FrameVersion, byte(t))
	return append(dst, payload...), nil
}

// EncodeEnvelope returns the complete frame (header included) of env.
func EncodeEnvelope(env ports.Envelope) ([]byte, error) {
	b := make([]byte, frameHeaderSize, frameHeaderSize+envelopeSizeHint(env))
	b[4], b[5] = FrameVersion, byte(env.Kind)
	switch env.Kind {
	case ports.KindChat:
		if len(env.Body) > domain.MaxMessageBytes {
			return nil, fmt.Errorf("encode chat: %w", domain.ErrMessageTooLong)
		}
		b = append(b, env.MessageID[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(timeToWire(env.SentAt)))
		b = appendString32(b, env.Body)
	case ports.KindDelivered, ports.KindRead:
		b = append(b, env.MessageID[:]...)
	case ports.KindTyping:
	case ports.KindOffer:
		m := env.Manifest
		if len(m.Name) > MaxManifestNameBytes {
			return nil, fmt.Errorf("encode offer: name of %d bytes: %w", len(m.Name), domain.ErrTooLarge)
		}
		if len(m.Files) > domain.MaxTransferFiles {
			return nil, fmt.Errorf("encode offer: %d files: %w", len(m.Files), domain.ErrTooLarge)
		}
		b = append(b, env.TransferID[:]...)
		b = appendString16(b, m.Name)
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.Files)))
		for _, f := range m.Files {
			if len(f.Path) > domain.MaxRelativePathBytes {
				return nil, fmt.Errorf("encode offer: path of %d bytes: %w", len(f.Path), domain.ErrTooLarge)
			}
			b = appendString16(b, f.Path)
			b = binary.BigEndian.AppendUint64(b, uint64(f.Size))
			b = append(b, f.Hash[:]...)
		}
	case ports.KindAccept:
		b = append(b, env.TransferID[:]...)
	case ports.KindDecline, ports.KindCancel:
		if len(env.Reason) > MaxReasonBytes {
			return nil, fmt.Errorf("encode %s: reason of %d bytes: %w", kindName(env.Kind), len(env.Reason), domain.ErrTooLarge)
		}
		b = append(b, env.TransferID[:]...)
		b = appendString16(b, env.Reason)
	case ports.KindRefused:
		b = append(b, env.MessageID[:]...)
		b = append(b, byte(env.Refusal))
		b = binary.BigEndian.AppendUint32(b, uint32(min(max(env.RetryAfter, 0), ports.MaxRetryAfter)/time.Millisecond))
	case ports.KindStatus:
		if len(env.Status.Text) > domain.MaxStatusTextBytes {
			return nil, fmt.Errorf("encode status: text of %d bytes: %w", len(env.Status.Text), domain.ErrTooLarge)
		}
		b = append(b, byte(env.Status.Availability))
		b = appendString16(b, env.Status.Text)
	case ports.KindGroupMessage, ports.KindGroupAck, ports.KindGroupLog, ports.KindGroupLogAsk, ports.KindGroupFile:
		if len(env.Group) > ports.MaxGroupPayload {
			return nil, fmt.Errorf("encode %s: group payload of %d bytes: %w", kindName(env.Kind), len(env.Group), domain.ErrTooLarge)
		}
		b = append(b, env.Group...) // opaque: the group transport's (docs/peer-protocol.md, "Groups")
	default:
		return nil, fmt.Errorf("encode: unknown envelope kind %d", env.Kind)
	}
	n := len(b) - 4
	if n > MaxFrameSize {
		return nil, fmt.Errorf("encode %s: %w (%d bytes)", kindName(env.Kind), domain.ErrTooLarge, n)
	}
	binary.BigEndian.PutUint32(b[:4], uint32(n))
	return b, nil
}

func envelopeSizeHint(env ports.Envelope) int {
	switch env.Kind {
	case ports.KindChat:
		return 28 + len(env.Body)
	case ports.KindGroupMessage, ports.KindGroupAck, ports.KindGroupLog, ports.KindGroupLogAsk, ports.KindGroupFile:
		return len(env.Group)
	case ports.KindOffer:
		return 22 + len(env.Manifest.Name) + len(env.Manifest.Files)*50
	}
	return 18 + len(env.Reason)
}

// IsEnvelope reports whether t carries a ports.Envelope this version knows.
func IsEnvelope(t FrameType) bool {
	return t >= FrameType(ports.KindChat) && t <= FrameType(ports.KindRefused) || t == FrameType(ports.KindStatus) || ports.IsGroupKind(ports.EnvelopeKind(t))
}

// DecodeEnvelope parses the payload of an envelope frame. It copies what it
// keeps, so the payload may be reused afterwards.
func DecodeEnvelope(t FrameType, payload []byte) (ports.Envelope, error) {
	d := decoder{b: payload}
	env := ports.Envelope{Kind: ports.EnvelopeKind(t)}
	switch env.Kind {
	case ports.KindChat:
		d.read(env.MessageID[:])
		env.SentAt = timeFromWire(int64(d.u64()))
		env.Body = d.string32(domain.MaxMessageBytes)
	case ports.KindDelivered, ports.KindRead:
		d.read(env.MessageID[:])
	case ports.KindTyping:
	case ports.KindOffer:
		d.read(env.TransferID[:])
		env.Manifest.Name = d.string16(MaxManifestNameBytes)
		n := d.u32()
		// Each entry takes at least 2+8+32 bytes: bound the count by what
		// the payload can hold before allocating.
		if n > domain.MaxTransferFiles || int(n) > d.remaining()/42 {
			return ports.Envelope{}, fmt.Errorf("%w: offer of %d files", ErrProtocol, n)
		}
		if n > 0 {
			env.Manifest.Files = make([]domain.FileEntry, n)
		}
		for i := range env.Manifest.Files {
			f := &env.Manifest.Files[i]
			f.Path = d.string16(domain.MaxRelativePathBytes)
			f.Size = int64(d.u64())
			d.read(f.Hash[:])
		}
	case ports.KindAccept:
		d.read(env.TransferID[:])
	case ports.KindDecline, ports.KindCancel:
		d.read(env.TransferID[:])
		env.Reason = d.string16(MaxReasonBytes)
	case ports.KindRefused:
		d.read(env.MessageID[:])
		var r [1]byte
		d.read(r[:])
		env.Refusal = ports.RefusalReason(r[0])
		env.RetryAfter = min(time.Duration(d.u32())*time.Millisecond, ports.MaxRetryAfter)
	case ports.KindStatus:
		var a [1]byte
		d.read(a[:])
		env.Status.Availability = domain.Availability(a[0])
		env.Status.Text = d.string16(domain.MaxStatusTextBytes)
	case ports.KindGroupMessage, ports.KindGroupAck, ports.KindGroupLog, ports.KindGroupLogAsk, ports.KindGroupFile:
		env.Group = append([]byte(nil), d.take(len(d.b))...)
	default:
		return ports.Envelope{}, fmt.Errorf("%w: frame type %#x is not an envelope", ErrProtocol, byte(t))
	}
	if d.err != nil {
		return ports.Envelope{}, fmt.Errorf("%w: %s frame: %v", ErrProtocol, kindName(env.Kind), d.err)
	}
	if len(d.b) != 0 {
		return ports.Envelope{}, fmt.Errorf("%w: %s frame: %d trailing bytes", ErrProtocol, kindName(env.Kind), len(d.b))
	}
	return env, nil
}

// timeToWire encodes a time as Unix nanoseconds; the zero time is 0.
func timeToWire(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeFromWire(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func appendString16(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendString32(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// decoder reads fields, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) remaining() int { return len(d.b) }

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("truncated: need %d bytes, have %d", n, len(d.b))
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) read(dst []byte) { copy(dst, d.take(len(dst))) }

func (d *decoder) u16() uint16 {
	if p := d.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) string16(max int) string { return d.stringN(int(d.u16()), max) }

func (d *decoder) string32(max int) string { return d.stringN(int(d.u32()), max) }

func (d *decoder) stringN(n, max int) string {
	if d.err != nil {
		return ""
	}
	if n > max {
		d.err = fmt.Errorf("string of %d bytes (at most %d)", n, max)
		return ""
	}
	return string(d.take(n))
}

func kindName(k ports.EnvelopeKind) string {
	switch k {
	case ports.KindChat:
		return "chat"
	case ports.KindDelivered:
		return "delivered"
	case ports.KindRead:
		return "read"
	case ports.KindTyping:
		return "typing"
	case ports.KindOffer:
		return "offer"
	case ports.KindAccept:
		return "accept"
	case ports.KindDecline:
		return "decline"
	case ports.KindCancel:
		return "cancel"
	case ports.KindRefused:
		return "refused"
	case ports.KindStatus:
		return "status"
	}
	return fmt.Sprintf("kind %d", k)
}
