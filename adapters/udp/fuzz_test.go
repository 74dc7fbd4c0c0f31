package udp_test

import (
	"bytes"
	"testing"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
)

func FuzzDecodeRequest(f *testing.F) {
	ok := make([]byte, 29)
	ok[0] = 1
	ok[28] = 5
	f.Add(ok)
	f.Add([]byte{2})
	f.Add(bytes.Repeat([]byte{0xff}, 29))
	f.Fuzz(func(t *testing.T, b []byte) {
		index, size, again, err := udp.DecodeRequest(b)
		if err != nil {
			return
		}
		if index < 0 || index >= domain.MaxTransferFiles || size < 0 || size > domain.MaxFileSize {
			t.Fatalf("accepted index %d size %d", index, size)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}

func FuzzDecodeAnswer(f *testing.F) {
	f.Add(append([]byte{0}, make([]byte, 40)...))
	f.Add([]byte{1})
	f.Add(append([]byte{0}, bytes.Repeat([]byte{0xff}, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		code, offset, err := udp.DecodeAnswer(b)
		if err != nil {
			return
		}
		if offset < 0 || offset > domain.MaxFileSize {
			t.Fatalf("accepted offset %d", offset)
		}
		if code == 0 && len(b) < 41 {
			t.Fatalf("ready answer from %d bytes", len(b))
		}
	})
}
