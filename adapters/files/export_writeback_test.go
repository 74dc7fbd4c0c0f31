package files

import (
	"errors"

	"github.com/chatx/chatx/ports"
)

// WritebackChunk exposes writebackChunk to the tests.
const WritebackChunk = writebackChunk

// RecordWriteback makes part p (from OpenPart) call start with every range
// it hands to write-back and settle with every range it waits for and drops
// from the cache, before the real system calls. With fail set, the calls
// fail instead of reaching the system, as on a file system without them.
func RecordWriteback(p ports.PartFile, fail bool, start, settle func(off, n int64)) {
	part := p.(*Part)
	part.mu.Lock()
	defer part.mu.Unlock()
	realStart, realSettle := part.wb.start, part.wb.settle
	part.wb.start = func(off, n int64) error {
		start(off, n)
		if fail {
			return errWritebackTest
		}
		return realStart(off, n)
	}
	part.wb.settle = func(off, n int64) error {
		settle(off, n)
		if fail {
			return errWritebackTest
		}
		return realSettle(off, n)
	}
}

var errWritebackTest = errors.New("write-back refused by the test")
