package udp

import (
	"bytes"
	"context"
	"testing"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports/contract"
)

// A sender's hash state kept after a broken stream is taken up only by a
// resume under the same algorithm; under the other one the source is
// hashed again, so the prefix compared is always of the stream's kind.
func TestSentStateIsTakenOnlyUnderItsAlgorithm(t *testing.T) {
	content := bytes.Repeat([]byte("resume"), 3*domain.HashChunkSize/6+1)
	src := contract.NewMemorySource(content)
	n := int64(2 * domain.HashChunkSize)
	want := func(alg domain.FileHashAlg) [32]byte {
		h := domain.NewFileHasher(alg)
		h.Write(content[:n])
		return h.Sum()
	}
	for _, tc := range []struct{ kept, resumed domain.FileHashAlg }{
		{domain.FileHashSHA256, domain.FileHashBLAKE3},
		{domain.FileHashBLAKE3, domain.FileHashSHA256},
		{domain.FileHashBLAKE3, domain.FileHashBLAKE3},
	} {
		var s sentStates
		k := sentKey{id: domain.NewTransferID(), size: int64(len(content))}
		h := domain.NewFileHasher(tc.kept)
		h.Write(content[:domain.HashChunkSize])
		s.Keep(k, h.State())
		got, err := s.prefix(context.Background(), k, tc.resumed, src, n, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		if got.Alg() != tc.resumed || got.Sum() != want(tc.resumed) {
			t.Fatalf("kept %v, resumed %v: prefix %x (%v), want %x", tc.kept, tc.resumed, got.Sum(), got.Alg(), want(tc.resumed))
		}
	}
}
