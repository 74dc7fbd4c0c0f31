package files

// writebackChunk is how many bytes a part collects before it asks the
// system to start writing them to disk (Linux: sync_file_range with
// SYNC_FILE_RANGE_WRITE). The write-back then runs while the rest of the
// file arrives, so the fsync in Commit finds little left to do.
const writebackChunk = 8 << 20

// writeBehind starts write-back of a part file in chunks as it grows. It is
// only a head start: Commit's fsync alone makes the file durable, so a
// failed or unsupported write-back is not an error; it only switches itself
// off. Not safe for concurrent use (Part holds its lock).
type writeBehind struct {
	// start asks for write-back of n bytes at off; nil when switched off.
	start func(off, n int64) error
	// from is where the bytes not yet handed to write-back begin.
	from int64
}

// wrote notes that the part now holds bytes up to end.
func (w *writeBehind) wrote(end int64) {
	if w.start == nil || end-w.from < writebackChunk {
		return
	}
	if err := w.start(w.from, end-w.from); err != nil {
		w.start = nil
		return
	}
	w.from = end
}

// truncated notes that the part was cut to n bytes.
func (w *writeBehind) truncated(n int64) { w.from = min(w.from, n) }
