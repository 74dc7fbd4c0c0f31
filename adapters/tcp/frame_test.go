package tcp_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// stream encodes envs back to back, with a ping and an unknown frame type in
// the middle.
func stream(t testing.TB, envs []ports.Envelope) []byte {
	t.Helper()
	var b []byte
	for i, env := range envs {
		f, err := tcp.EncodeEnvelope(env)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, f...)
		if i == 1 {
			b, _ = tcp.AppendFrame(b, tcp.FramePing, []byte("12345678"))
			b, _ = tcp.AppendFrame(b, 0x7f, []byte("from a future version"))
		}
	}
	return b
}

// readAll decodes every envelope of r, skipping control and unknown frames.
func readAll(r io.Reader) ([]ports.Envelope, error) {
	fr := tcp.NewFrameReader(r)
	var out []ports.Envelope
	for {
		f, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if !tcp.IsEnvelope(f.Type) {
			continue
		}
		env, err := tcp.DecodeEnvelope(f.Type, f.Payload)
		if err != nil {
			return out, err
		}
		out = append(out, env)
	}
}

func TestFramesRoundTripHoweverTheStreamIsCut(t *testing.T) {
	want := contract.LinkSampleEnvelopes()
	whole := stream(t, want)
	check := func(t *testing.T, r io.Reader) {
		t.Helper()
		got, err := readAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d envelopes, want %d", len(got), len(want))
		}
		for i := range want {
			contract.LinkSameEnvelope(t, got[i], want[i])
		}
	}
	t.Run("coalesced", func(t *testing.T) { check(t, bytes.NewReader(whole)) })
	t.Run("dripped one byte at a time", func(t *testing.T) { check(t, iotest.OneByteReader(bytes.NewReader(whole))) })
	t.Run("split at every byte", func(t *testing.T) {
		for i := 1; i < len(whole); i++ {
			check(t, io.MultiReader(iotest.HalfReader(bytes.NewReader(whole[:i])), bytes.NewReader(whole[i:])))
		}
	})
}

func TestFrameReaderRefusesBadFrames(t *testing.T) {
	header := func(n uint32, rest ...byte) []byte { return append(binary.BigEndian.AppendUint32(nil, n), rest...) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"length above 1 MiB", header(tcp.MaxFrameSize+1, 1, 1), tcp.ErrFrameTooLarge},
		{"garbage length", []byte{0xff, 0xff, 0xff, 0xff, 0, 0}, tcp.ErrFrameTooLarge},
		{"length below the header", header(1, 1), tcp.ErrProtocol},
		{"zero length", header(0), tcp.ErrProtocol},
		{"unknown version", header(2, 9, 1), tcp.ErrProtocol},
		{"ends inside the length", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"ends inside the payload", header(100, 1, 1, 1, 2, 3), io.ErrUnexpectedEOF},
		{"empty stream", nil, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tcp.NewFrameReader(bytes.NewReader(tt.in)).Next()
			if !errors.Is(err, tt.want) {
				t.Fatalf("Next: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFrameAtTheLimit(t *testing.T) {
	payload := bytes.Repeat([]byte{'x'}, tcp.MaxFrameSize-2)
	b, err := tcp.AppendFrame(nil, 0x7e, payload)
	if err != nil {
		t.Fatal(err)
	}
	f, err := tcp.NewFrameReader(bytes.NewReader(b)).Next()
	if err != nil || len(f.Payload) != len(payload) {
		t.Fatalf("frame of exactly 1 MiB: %v, %d bytes", err, len(f.Payload))
	}
	if _, err := tcp.AppendFrame(nil, 0x7e, append(payload, 'x')); !errors.Is(err, tcp.ErrFrameTooLarge) {
		t.Fatalf("AppendFrame over 1 MiB: %v", err)
	}
}

func TestDecodeEnvelopeRefusesMalformedPayloads(t *testing.T) {
	chat, err := tcp.EncodeEnvelope(ports.Envelope{Kind: ports.KindChat, Body: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	chatPayload := chat[6:]
	bodyLen := func(n uint32) []byte {
		p := append([]byte(nil), chatPayload[:24]...)
		return binary.BigEndian.AppendUint32(p, n)
	}
	offer := func(files uint32) []byte {
		p := make([]byte, 16)
		p = binary.BigEndian.AppendUint16(p, 1)
		p = append(p, 'x')
		return binary.BigEndian.AppendUint32(p, files)
	}
	tests := []struct {
		name    string
		kind    ports.EnvelopeKind
		payload []byte
	}{
		{"chat cut short", ports.KindChat, chatPayload[:len(chatPayload)-1]},
		{"chat with trailing bytes", ports.KindChat, append(append([]byte(nil), chatPayload...), 0)},
		{"chat body over 64 KiB", ports.KindChat, bodyLen(domain.MaxMessageBytes + 1)},
		{"chat body length past the end", ports.KindChat, bodyLen(10)},
		{"delivered without id", ports.KindDelivered, []byte{1, 2, 3}},
		{"typing with a payload", ports.KindTyping, []byte{1}},
		{"offer with more files than fit", ports.KindOffer, offer(1000)},
		{"offer over the file cap", ports.KindOffer, offer(domain.MaxTransferFiles + 1)},
		{"decline reason too long", ports.KindDecline, binary.BigEndian.AppendUint16(make([]byte, 16), tcp.MaxReasonBytes+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if env, err := tcp.DecodeEnvelope(tcp.FrameType(tt.kind), tt.payload); !errors.Is(err, tcp.ErrProtocol) {
				t.Fatalf("DecodeEnvelope: %+v, %v; want ErrProtocol", env, err)
			}
		})
	}
}

func TestEncodeEnvelopeRefusesWhatTheReceiverWould(t *testing.T) {
	tests := []struct {
		name string
		env  ports.Envelope
	}{
		{"body over 64 KiB", ports.Envelope{Kind: ports.KindChat, Body: strings.Repeat("x", domain.MaxMessageBytes+1)}},
		{"reason too long", ports.Envelope{Kind: ports.KindCancel, Reason: strings.Repeat("x", tcp.MaxReasonBytes+1)}},
		{"offer larger than a frame", ports.Envelope{Kind: ports.KindOffer, Manifest: domain.Manifest{Name: "x", Files: manyFiles(600, 2000)}}},
		{"unknown kind", ports.Envelope{Kind: 99}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tcp.EncodeEnvelope(tt.env); err == nil {
				t.Fatal("EncodeEnvelope: nil error")
			}
		})
	}
}

func manyFiles(n, pathLen int) []domain.FileEntry {
	fs := make([]domain.FileEntry, n)
	for i := range fs {
		fs[i] = domain.FileEntry{Path: strings.Repeat("p", pathLen-8) + string(rune('a'+i%26)) + "0000000"[:7], Size: int64(i)}
	}
	return fs
}

// FuzzFrameDecoder feeds arbitrary bytes to the frame reader and the
// envelope decoder: they must return errors, never panic or allocate more
// than a frame, and whatever decodes must encode back to an equal envelope.
func FuzzFrameDecoder(f *testing.F) {
	f.Add(stream(f, contract.LinkSampleEnvelopes()))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 2, 1, 0x42})
	f.Fuzz(func(t *testing.T, in []byte) {
		fr := tcp.NewFrameReader(bytes.NewReader(in))
		for {
			fm, err := fr.Next()
			if err != nil {
				return
			}
			if len(fm.Payload) > tcp.MaxFrameSize {
				t.Fatalf("payload of %d bytes", len(fm.Payload))
			}
			if !tcp.IsEnvelope(fm.Type) {
				continue
			}
			env, err := tcp.DecodeEnvelope(fm.Type, fm.Payload)
			if err != nil {
				continue
			}
			again, err := tcp.EncodeEnvelope(env)
			if err != nil {
				t.Fatalf("decoded envelope does not encode: %v", err)
			}
			env2, err := tcp.DecodeEnvelope(fm.Type, again[6:])
			if err != nil {
				t.Fatalf("re-encoded envelope does not decode: %v", err)
			}
			contract.LinkSameEnvelope(t, env2, env)
		}
	})
}

// The example of docs/peer-protocol.md, byte for byte.
func TestDocumentedChatFrame(t *testing.T) {
	var id domain.MessageID
	id[15] = 1
	got, err := tcp.EncodeEnvelope(ports.Envelope{Kind: ports.KindChat, MessageID: id, SentAt: time.Unix(1, 0), Body: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 0, 0x20, 1, 1}
	want = append(want, id[:]...)
	want = append(want, 0, 0, 0, 0, 0x3b, 0x9a, 0xca, 0, 0, 0, 0, 2, 'h', 'i')
	if !bytes.Equal(got, want) {
		t.Fatalf("chat frame\n got % x\nwant % x", got, want)
	}
}
