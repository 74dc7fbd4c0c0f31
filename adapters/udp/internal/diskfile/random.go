package diskfile

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/chatx/chatx/domain"
)

// Sums is a file's hash (domain.FileHasher) under both chunk hashes, so a
// test can check a file whichever one its stream used.
type Sums struct{ SHA256, BLAKE3 [32]byte }

// Of is the hash under alg.
func (s Sums) Of(alg domain.FileHashAlg) [32]byte {
	if alg == domain.FileHashBLAKE3 {
		return s.BLAKE3
	}
	return s.SHA256
}

// sumsWriter hashes what it is written both ways.
type sumsWriter struct{ a, b *domain.FileHasher }

func newSumsWriter() sumsWriter {
	return sumsWriter{domain.NewFileHasher(domain.FileHashSHA256), domain.NewFileHasher(domain.FileHashBLAKE3)}
}

func (w sumsWriter) Write(p []byte) (int, error) {
	w.a.Write(p)
	return w.b.Write(p)
}

func (w sumsWriter) sums() Sums { return Sums{w.a.Sum(), w.b.Sum()} }

// WriteRandom writes size pseudo-random bytes (ChaCha8 from seed) to path
// and returns their hashes.
func WriteRandom(path string, size int64, seed uint64) (Sums, error) {
	f, err := os.Create(path)
	if err != nil {
		return Sums{}, err
	}
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	rng := rand.NewChaCha8(s)
	h := newSumsWriter()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if _, err := io.CopyN(w, rng, size); err != nil {
		_ = f.Close()
		return Sums{}, fmt.Errorf("write %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return Sums{}, err
	}
	if err := f.Close(); err != nil {
		return Sums{}, err
	}
	return h.sums(), nil
}

// HashFile returns a file's hashes (domain.FileHasher, both chunk hashes).
func HashFile(path string) (Sums, error) {
	f, err := os.Open(path)
	if err != nil {
		return Sums{}, err
	}
	defer f.Close()
	h := newSumsWriter()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return Sums{}, err
	}
	return h.sums(), nil
}

// String is both hashes in hex, "sha256hex/blake3hex" (ParseSums reads it).
func (s Sums) String() string {
	return hex.EncodeToString(s.SHA256[:]) + "/" + hex.EncodeToString(s.BLAKE3[:])
}

// ParseSums reads String's form.
func ParseSums(v string) (Sums, error) {
	var s Sums
	a, b, ok := strings.Cut(v, "/")
	x, err1 := hex.DecodeString(a)
	y, err2 := hex.DecodeString(b)
	if !ok || err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
		return s, fmt.Errorf("file hashes %q: want sha256hex/blake3hex", v)
	}
	copy(s.SHA256[:], x)
	copy(s.BLAKE3[:], y)
	return s, nil
}
