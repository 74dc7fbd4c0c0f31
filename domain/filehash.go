package domain

import (
	"crypto/sha256"
	"encoding"
	"fmt"
	"hash"
	"sync"
)

// HashChunkSize is the unit of a file's hash: 4 MiB.
const HashChunkSize = 4 << 20

// FileHasher computes the chunked SHA-256 of a file (docs/file-protocol.md,
// "File hash"): the file is cut into chunks of HashChunkSize bytes (the
// last one may be shorter), each chunk is hashed with SHA-256, and the
// file's hash is the SHA-256 of the concatenated chunk hashes; a file of
// no bytes has no chunk, so its hash is the SHA-256 of nothing. The same
// value over the first n bytes, n a multiple of HashChunkSize, is the
// prefix hash a resume compares — and its state can be kept (State) and
// taken up again (ResumeFileHasher) without reading those bytes again.
//
// One pass of SHA-256 over the data, like a plain SHA-256, plus 32 bytes
// per chunk.
type FileHasher struct {
	chunk   hash.Hash // the current chunk
	inChunk int64     // bytes in it
	list    hash.Hash // over the hashes of the completed chunks
	done    int64     // bytes in completed chunks
	sum     [32]byte
}

// NewFileHasher starts at byte 0.
func NewFileHasher() *FileHasher {
	return &FileHasher{chunk: sha256.New(), list: sha256.New()}
}

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
// to go on hashing from there without the bytes before.
type FileHashState struct {
	Offset int64
	list   []byte
}

// State is the hasher's state at its last chunk boundary.
func (h *FileHasher) State() FileHashState {
	b, err := h.list.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("sha256 state: %v", err)) // crypto/sha256 always marshals
	}
	return FileHashState{Offset: h.done, list: b}
}

// ResumeFileHasher goes on from a state.
func ResumeFileHasher(s FileHashState) (*FileHasher, error) {
	h := NewFileHasher()
	if s.Offset == 0 && s.list == nil {
		return h, nil
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
// SHA-256), as Write would have: a striped sender hashes its chunks on
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
