package domain

import (
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/zeebo/blake3"
)

// HashChunkSize is the unit of a file's hash: 4 MiB.
const HashChunkSize = 4 << 20

// FileHashAlg names the hash of each chunk in a file hash
// (docs/file-protocol.md, "File hash"). The zero value names none.
type FileHashAlg uint8

const (
	// FileHashSHA256: every chunk is hashed with SHA-256 (stream versions
	// 2 and 3, and the offer's hash field).
	FileHashSHA256 FileHashAlg = 1
	// FileHashBLAKE3: every chunk is hashed with BLAKE3 (32 bytes of
	// output, no key); stream versions 4 and 5. BLAKE3 takes about half the
	// CPU time of SHA-256 with the SHA extensions per byte.
	FileHashBLAKE3 FileHashAlg = 2
)

// Valid reports whether a names a hash this package computes.
func (a FileHashAlg) Valid() bool { return a == FileHashSHA256 || a == FileHashBLAKE3 }

func (a FileHashAlg) String() string {
	switch a {
	case FileHashSHA256:
		return "sha256"
	case FileHashBLAKE3:
		return "blake3"
	}
	return fmt.Sprintf("filehash(%d)", uint8(a))
}

// NewChunkHash is a hash of one chunk under a: what a striped sender
// computes on each of its cores before FileHasher.AddChunkSum. It panics
// on an invalid a (a programming error: every a comes from a constant or
// a parsed header that was checked).
func (a FileHashAlg) NewChunkHash() hash.Hash {
	switch a {
	case FileHashSHA256:
		return sha256.New()
	case FileHashBLAKE3:
		return blake3.New()
	}
	panic(fmt.Sprintf("no chunk hash for %v", a))
}

// FileHasher computes the chunked hash of a file (docs/file-protocol.md,
// "File hash"): the file is cut into chunks of HashChunkSize bytes (the
// last one may be shorter), each chunk is hashed with the hasher's
// algorithm (SHA-256 or BLAKE3, 32 bytes each), and the file's hash is
// the SHA-256 of the concatenated chunk hashes; a file of no bytes has no
// chunk, so its hash is the SHA-256 of nothing, whatever the algorithm.
// The same value over the first n bytes, n a multiple of HashChunkSize,
// is the prefix hash a resume compares — and its state can be kept
// (State) and taken up again (ResumeFileHasher) without reading those
// bytes again.
//
// One pass of the chunk hash over the data, plus SHA-256 over 32 bytes
// per chunk. The list stays SHA-256 under either algorithm: it costs
// nothing worth saving (8 KiB per GiB), and its state marshals
// (crypto/sha256), so a kept state is a fixed 100-odd bytes however long
// the file.
type FileHasher struct {
	alg     FileHashAlg
	chunk   hash.Hash // the current chunk
	inChunk int64     // bytes in it
	list    hash.Hash // SHA-256 over the hashes of the completed chunks
	done    int64     // bytes in completed chunks
	sum     [32]byte
}

// NewFileHasher starts at byte 0, hashing chunks with alg. It panics on
// an invalid alg (see NewChunkHash).
func NewFileHasher(alg FileHashAlg) *FileHasher {
	return &FileHasher{alg: alg, chunk: alg.NewChunkHash(), list: sha256.New()}
}

// Alg is the hasher's chunk hash.
func (h *FileHasher) Alg() FileHashAlg { return h.alg }

// Write adds the next bytes of the file. It never fails.
func (h *FileHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(int64(len(p)), HashChunkSize-h.inChunk)
		h.chunk.Write(p[:k])
		h.inChunk += k
		p = p[k:]
		if h.inChunk == HashChunkSize {
			h.list.Write(h.chunk.Sum(h.sum[:0]))
			h.chunk.Reset()
			h.done += HashChunkSize
			h.inChunk = 0
		}
	}
	return n, nil
}

// Written is how many bytes were hashed.
func (h *FileHasher) Written() int64 { return h.done + h.inChunk }

// Sum is the hash of the bytes written so far taken as a whole file.
func (h *FileHasher) Sum() [32]byte {
	if h.inChunk == 0 {
		var s [32]byte
		h.list.Sum(s[:0])
		return s
	}
	list := cloneHash(h.list)
	var c [32]byte
	list.Write(h.chunk.Sum(c[:0]))
	var s [32]byte
	list.Sum(s[:0])
	return s
}

// Boundary is the hasher as it was after the last completed chunk: the
// bytes it covers (a multiple of HashChunkSize) and their prefix hash.
func (h *FileHasher) Boundary() (int64, [32]byte) {
	var s [32]byte
	h.list.Sum(s[:0])
	return h.done, s
}

// FileHashState is the state of a FileHasher at a chunk boundary: enough
// to go on hashing from there without the bytes before. It carries its
// algorithm: a state is taken up only by a hasher of the same one.
type FileHashState struct {
	Offset int64
	alg    FileHashAlg
	list   []byte
}

// Alg is the algorithm the state was computed with.
func (s FileHashState) Alg() FileHashAlg { return s.alg }

// State is the hasher's state at its last chunk boundary.
func (h *FileHasher) State() FileHashState {
	b, err := h.list.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("sha256 state: %v", err)) // crypto/sha256 always marshals
	}
	return FileHashState{Offset: h.done, alg: h.alg, list: b}
}

// ErrHashAlgMismatch: a kept hash state was computed with another
// algorithm than the one asked for; the bytes must be hashed again.
var ErrHashAlgMismatch = errors.New("file hash state of another algorithm")

// ResumeFileHasher goes on from a state, hashing chunks with alg. A state
// of another algorithm is refused (ErrHashAlgMismatch): a resume across a
// change of algorithm hashes the bytes again, never reuses the state.
func ResumeFileHasher(s FileHashState, alg FileHashAlg) (*FileHasher, error) {
	h := NewFileHasher(alg)
	if s.Offset == 0 && s.list == nil {
		return h, nil
	}
	if s.alg != alg {
		return nil, fmt.Errorf("resume a %v file hash from a %v state at %d: %w", alg, s.alg, s.Offset, ErrHashAlgMismatch)
	}
	if s.Offset < 0 || s.Offset%HashChunkSize != 0 {
		return nil, fmt.Errorf("file hash state at %d: not a chunk boundary", s.Offset)
	}
	if err := h.list.(encoding.BinaryUnmarshaler).UnmarshalBinary(s.list); err != nil {
		return nil, fmt.Errorf("file hash state: %w", err)
	}
	h.done = s.Offset
	return h, nil
}

func cloneHash(h hash.Hash) hash.Hash {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("sha256 state: %v", err))
	}
	c := sha256.New()
	if err := c.(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
		panic(fmt.Sprintf("sha256 state: %v", err))
	}
	return c
}

// ResumeOffset is where a resume of a file of size bytes may start when
// have bytes of it are there: the last chunk boundary at or below have, or
// size itself when every byte is there.
func ResumeOffset(have, size int64) int64 {
	if have >= size {
		return size
	}
	return have - have%HashChunkSize
}

// FileHashStates keeps the hash states of interrupted files until their
// resume, at most Max of them (then any one is forgotten: its resume reads
// its bytes again). The zero value is ready; it is safe for concurrent use.
type FileHashStates[K comparable] struct {
	Max int // 0: 256

	mu sync.Mutex
	m  map[K]FileHashState
}

// Keep records st for k; a state at offset 0 is not worth keeping.
func (c *FileHashStates[K]) Keep(k K, st FileHashState) {
	if st.Offset == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[K]FileHashState)
	}
	limit := c.Max
	if limit <= 0 {
		limit = 256
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= limit {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = st
}

// Take returns and forgets the state kept for k.
func (c *FileHashStates[K]) Take(k K) (FileHashState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[k]
	delete(c.m, k)
	return st, ok
}

// AddChunkSum adds a chunk of n bytes that was hashed elsewhere (sum is its
// hash under the hasher's algorithm: Alg().NewChunkHash()), as Write would have: a striped sender hashes its chunks on
// several cores and adds their hashes in file order. The hasher must stand
// at a chunk boundary, and a chunk shorter than HashChunkSize must be the
// file's last (nothing may be added after it).
func (h *FileHasher) AddChunkSum(sum [32]byte, n int64) error {
	if h.inChunk != 0 || h.done%HashChunkSize != 0 || n <= 0 || n > HashChunkSize {
		return fmt.Errorf("add a chunk of %d bytes at %d: not at a chunk boundary", n, h.Written())
	}
	h.list.Write(sum[:])
	h.done += n
	return nil
}
