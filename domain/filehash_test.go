package domain_test

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/chatx/chatx/domain"
)

// chunked is the definition, written out: SHA-256 over the SHA-256s of
// the 4 MiB chunks.
func chunked(b []byte) [32]byte {
	var list []byte
	for len(b) > 0 {
		k := min(len(b), domain.HashChunkSize)
		s := sha256.Sum256(b[:k])
		list = append(list, s[:]...)
		b = b[k:]
	}
	return sha256.Sum256(list)
}

func TestFileHasherIsChunkedSHA256(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3*domain.HashChunkSize+5)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, n := range []int{0, 1, domain.HashChunkSize - 1, domain.HashChunkSize, domain.HashChunkSize + 1, 2 * domain.HashChunkSize, len(data)} {
		h := domain.NewFileHasher()
		// Odd write sizes cross chunk boundaries inside one Write.
		for p := data[:n]; len(p) > 0; {
			k := min(len(p), 1+r.IntN(3<<20))
			h.Write(p[:k])
			p = p[k:]
		}
		if got, want := h.Sum(), chunked(data[:n]); got != want || h.Written() != int64(n) {
			t.Fatalf("%d bytes: %x after %d, want %x", n, got, h.Written(), want)
		}
	}
	if got := domain.NewFileHasher().Sum(); got != sha256.Sum256(nil) {
		t.Fatalf("empty file: %x, want the SHA-256 of nothing", got)
	}
}

func TestFileHasherResumesFromItsState(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("chatx"), domain.HashChunkSize) // 5 chunks
	h := domain.NewFileHasher()
	h.Write(data[:2*domain.HashChunkSize+100])
	st := h.State()
	if off, sum := h.Boundary(); off != 2*domain.HashChunkSize || sum != chunked(data[:off]) {
		t.Fatalf("boundary %d %x", off, sum)
	}
	g, err := domain.ResumeFileHasher(st)
	if err != nil {
		t.Fatal(err)
	}
	g.Write(data[st.Offset:])
	if g.Sum() != chunked(data) || g.Written() != int64(len(data)) {
		t.Fatal("a resumed hasher differs from one that read every byte")
	}
	if _, err := domain.ResumeFileHasher(domain.FileHashState{Offset: 7}); err == nil {
		t.Fatal("a state off a chunk boundary was taken")
	}
}

func TestResumeOffset(t *testing.T) {
	t.Parallel()
	const c = domain.HashChunkSize
	for _, tc := range []struct{ have, size, want int64 }{
		{0, 10, 0}, {5, 10, 0}, {10, 10, 10}, {c + 5, 3 * c, c}, {2 * c, 3 * c, 2 * c}, {3*c + 1, 3*c + 1, 3*c + 1},
	} {
		if got := domain.ResumeOffset(tc.have, tc.size); got != tc.want {
			t.Errorf("ResumeOffset(%d, %d) = %d, want %d", tc.have, tc.size, got, tc.want)
		}
	}
}

func TestFileHasherTakesChunkSumsHashedElsewhere(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("stripe"), domain.HashChunkSize/2) // 3 chunks
	h := domain.NewFileHasher()
	h.Write(data[:domain.HashChunkSize])
	for off := domain.HashChunkSize; off < len(data); off += domain.HashChunkSize {
		end := min(off+domain.HashChunkSize, len(data))
		if err := h.AddChunkSum(sha256.Sum256(data[off:end]), int64(end-off)); err != nil {
			t.Fatal(err)
		}
	}
	if h.Sum() != chunked(data) || h.Written() != int64(len(data)) {
		t.Fatal("chunk sums added differ from the bytes written")
	}
	g := domain.NewFileHasher()
	g.Write(data[:10])
	if err := g.AddChunkSum([32]byte{}, domain.HashChunkSize); err == nil {
		t.Fatal("a chunk sum was taken off a chunk boundary")
	}
}
