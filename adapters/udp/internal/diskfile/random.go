package diskfile

import (
	"github.com/chatx/chatx/domain"

	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
)

// WriteRandom writes size pseudo-random bytes (ChaCha8 from seed) to path
// and returns their SHA-256.
func WriteRandom(path string, size int64, seed uint64) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Create(path)
	if err != nil {
		return sum, err
	}
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	rng := rand.NewChaCha8(s)
	h := domain.NewFileHasher(domain.FileHashSHA256)
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if _, err := io.CopyN(w, rng, size); err != nil {
		_ = f.Close()
		return sum, fmt.Errorf("write %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return sum, err
	}
	if err := f.Close(); err != nil {
		return sum, err
	}
	return h.Sum(), nil
}

// HashFile returns a file's hash (domain.FileHasher, the chunked SHA-256).
func HashFile(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := domain.NewFileHasher(domain.FileHashSHA256)
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return sum, err
	}
	return h.Sum(), nil
}
