package domain_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/chatx/chatx/domain"
)

var algs = []domain.FileHashAlg{domain.FileHashSHA256, domain.FileHashBLAKE3}

// chunkSum is one chunk's hash under alg, from the library itself.
func chunkSum(alg domain.FileHashAlg, b []byte) [32]byte {
	if alg == domain.FileHashBLAKE3 {
		return blake3.Sum256(b)
	}
	return sha256.Sum256(b)
}

// chunked is the definition, written out: SHA-256 over the chunk hashes
// of the 4 MiB chunks.
func chunked(alg domain.FileHashAlg, b []byte) [32]byte {
	var list []byte
	for len(b) > 0 {
		k := min(len(b), domain.HashChunkSize)
		s := chunkSum(alg, b[:k])
		list = append(list, s[:]...)
		b = b[k:]
	}
	return sha256.Sum256(list)
}

// pattern is the input of BLAKE3's own test vectors: byte i is i mod 251.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// TestFileHashKnownAnswers holds the test vectors of docs/file-protocol.md
// §5.0, computed apart from this code (sha256sum and b3sum per chunk,
// sha256sum over the concatenated binary chunk hashes).
func TestFileHashKnownAnswers(t *testing.T) {
	t.Parallel()
	const c = domain.HashChunkSize
	for _, tc := range []struct {
		alg  domain.FileHashAlg
		n    int
		want string
	}{
		{domain.FileHashSHA256, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{domain.FileHashSHA256, 1, "1406e05881e299367766d313e26c05564ec91bf721d31726bd6e46e60689539a"},
		{domain.FileHashSHA256, c, "b9654428408015906b44a00935b70af33830aa344b780b0eabd535a133150d04"},
		{domain.FileHashSHA256, c + 1, "4a6cc0a344febaa07772e7c974834b2fb1d24594d4ba15f27c97a54699709f44"},
		{domain.FileHashBLAKE3, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{domain.FileHashBLAKE3, 1, "d1e1dff5eb25d82d6a46884dd33a604cd5993356e45c7b5d79a0537886d8a373"},
		{domain.FileHashBLAKE3, c, "f1caa653c8dad441753dd81fba8b94d8bfecd184a829fdc3d4e979785ec7d885"},
		{domain.FileHashBLAKE3, c + 1, "e4c455739bc911096c1e88ac9553cd8393b983189884b9569f38dba03f5cbc99"},
	} {
		h := domain.NewFileHasher(tc.alg)
		h.Write(pattern(tc.n))
		if got := h.Sum(); hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("%v of %d bytes: %x, want %s", tc.alg, tc.n, got, tc.want)
		}
	}
	// The chunk hash itself: BLAKE3's published vectors for 0 and 1 byte.
	for n, want := range map[int]string{
		0: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
		1: "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
	} {
		ch := domain.FileHashBLAKE3.NewChunkHash()
		ch.Write(pattern(n))
		if got := hex.EncodeToString(ch.Sum(nil)); got != want {
			t.Errorf("BLAKE3 of %d bytes: %s, want %s", n, got, want)
		}
	}
}

func TestFileHasherIsChunked(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3*domain.HashChunkSize+5)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, alg := range algs {
		for _, n := range []int{0, 1, domain.HashChunkSize - 1, domain.HashChunkSize, domain.HashChunkSize + 1, 2 * domain.HashChunkSize, len(data)} {
			h := domain.NewFileHasher(alg)
			// Odd write sizes cross chunk boundaries inside one Write.
			for p := data[:n]; len(p) > 0; {
				k := min(len(p), 1+r.IntN(3<<20))
				h.Write(p[:k])
				p = p[k:]
			}
			if got, want := h.Sum(), chunked(alg, data[:n]); got != want || h.Written() != int64(n) {
				t.Fatalf("%v, %d bytes: %x after %d, want %x", alg, n, got, h.Written(), want)
			}
		}
	}
	one := data[:domain.HashChunkSize+1]
	a, b := domain.NewFileHasher(domain.FileHashSHA256), domain.NewFileHasher(domain.FileHashBLAKE3)
	a.Write(one)
	b.Write(one)
	if a.Sum() == b.Sum() {
		t.Fatal("the two algorithms give one hash")
	}
}

func TestFileHasherResumesFromItsState(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("chatx"), domain.HashChunkSize) // 5 chunks
	for _, alg := range algs {
		h := domain.NewFileHasher(alg)
		h.Write(data[:2*domain.HashChunkSize+100])
		st := h.State()
		if off, sum := h.Boundary(); off != 2*domain.HashChunkSize || sum != chunked(alg, data[:off]) {
			t.Fatalf("%v: boundary %d %x", alg, off, sum)
		}
		if st.Alg() != alg {
			t.Fatalf("a %v state says %v", alg, st.Alg())
		}
		g, err := domain.ResumeFileHasher(st, alg)
		if err != nil {
			t.Fatal(err)
		}
		g.Write(data[st.Offset:])
		if g.Sum() != chunked(alg, data) || g.Written() != int64(len(data)) {
			t.Fatalf("%v: a resumed hasher differs from one that read every byte", alg)
		}
		if _, err := domain.ResumeFileHasher(domain.FileHashState{Offset: 7}, alg); err == nil {
			t.Fatal("a state off a chunk boundary was taken")
		}
	}
}

// A state kept under one algorithm is never taken up by the other: the
// resume must hash again, or it would compare hashes of two kinds.
func TestFileHashStateOfAnotherAlgorithmIsRefused(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("x"), 2*domain.HashChunkSize)
	for _, tc := range []struct{ kept, want domain.FileHashAlg }{
		{domain.FileHashSHA256, domain.FileHashBLAKE3},
		{domain.FileHashBLAKE3, domain.FileHashSHA256},
	} {
		h := domain.NewFileHasher(tc.kept)
		h.Write(data)
		if _, err := domain.ResumeFileHasher(h.State(), tc.want); !errors.Is(err, domain.ErrHashAlgMismatch) {
			t.Fatalf("a %v state resumed as %v: %v", tc.kept, tc.want, err)
		}
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
	for _, alg := range algs {
		h := domain.NewFileHasher(alg)
		h.Write(data[:domain.HashChunkSize])
		for off := domain.HashChunkSize; off < len(data); off += domain.HashChunkSize {
			end := min(off+domain.HashChunkSize, len(data))
			ch := alg.NewChunkHash()
			ch.Write(data[off:end])
			var sum [32]byte
			ch.Sum(sum[:0])
			if err := h.AddChunkSum(sum, int64(end-off)); err != nil {
				t.Fatal(err)
			}
		}
		if h.Sum() != chunked(alg, data) || h.Written() != int64(len(data)) {
			t.Fatalf("%v: chunk sums added differ from the bytes written", alg)
		}
		g := domain.NewFileHasher(alg)
		g.Write(data[:10])
		if err := g.AddChunkSum([32]byte{}, domain.HashChunkSize); err == nil {
			t.Fatal("a chunk sum was taken off a chunk boundary")
		}
	}
}

// BenchmarkFileHasher compares the CPU time per byte of the two chunk
// hashes, written in the transport's 256 KiB buffers (both run on one
// goroutine, so time per op is CPU time).
func BenchmarkFileHasher(b *testing.B) {
	buf := pattern(256 << 10)
	for _, alg := range algs {
		b.Run(alg.String(), func(b *testing.B) {
			h := domain.NewFileHasher(alg)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				h.Write(buf)
			}
			_ = h.Sum()
		})
	}
}
