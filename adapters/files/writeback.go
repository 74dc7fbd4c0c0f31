package files

// writebackChunk is how many bytes a part collects before it asks the
// system to start writing them to disk (Linux: sync_file_range with
// SYNC_FILE_RANGE_WRITE). The write-back then runs while the rest of the
// file arrives, so the fsync in Commit finds little left to do.
const writebackChunk = 8 << 20

// writeBehind starts write-back of a part file in chunks as it grows and,
// one chunk behind, waits for the previous chunk to reach the disk and drops
// it from the page cache: a download streams through a few chunks of cache
// instead of filling memory with pages nobody reads again (the hash was
// taken as the bytes went by). It is only a head start: Commit's fsync
// alone makes the file durable, so a failed or unsupported call is not an
// error; it switches that step off. Not safe for concurrent use (Part holds
// its lock).
type writeBehind struct {
	// start asks for write-back of n bytes at off without waiting; nil
	// when switched off.
	start func(off, n int64) error
	// settle waits until n bytes at off are on disk and drops them from
	// the page cache; nil when switched off.
	settle func(off, n int64) error
	// from is where the bytes not yet handed to write-back begin.
	from int64
	// prevOff and prevN are the chunk started last, not yet settled.
	prevOff, prevN int64
}

// wrote notes that the part now holds bytes up to end.
func (w *writeBehind) wrote(end int64) {
	if w.start == nil || end-w.from < writebackChunk {
		return
	}
	if err := w.start(w.from, end-w.from); err != nil {
		w.start, w.settle = nil, nil
		return
	}
	if w.settle != nil && w.prevN > 0 {
		if err := w.settle(w.prevOff, w.prevN); err != nil {
			w.settle = nil
		}
	}
	w.prevOff, w.prevN = w.from, end-w.from
	w.from = end
}

// truncated notes that the part was cut to n bytes.
func (w *writeBehind) truncated(n int64) {
	w.from = min(w.from, n)
	w.prevOff, w.prevN = 0, 0
}
