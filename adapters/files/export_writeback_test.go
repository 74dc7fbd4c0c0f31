package files

import "github.com/chatx/chatx/ports"

// WritebackChunk exposes writebackChunk to the tests.
const WritebackChunk = writebackChunk

// RecordWriteback makes part p (from OpenPart) call rec with every range it
// hands to write-back, before the real system call.
func RecordWriteback(p ports.PartFile, rec func(off, n int64)) {
	part := p.(*Part)
	part.mu.Lock()
	defer part.mu.Unlock()
	start := part.wb.start
	part.wb.start = func(off, n int64) error {
		rec(off, n)
		return start(off, n)
	}
}

// FailWriteback makes part p's write-back fail, as on a file system without
// it; rec is called with every attempt.
func FailWriteback(p ports.PartFile, rec func(off, n int64)) {
	part := p.(*Part)
	part.mu.Lock()
	defer part.mu.Unlock()
	part.wb.start = func(off, n int64) error {
		rec(off, n)
		return errWritebackTest
	}
}

var errWritebackTest = errorString("write-back refused by the test")

type errorString string

func (e errorString) Error() string { return string(e) }
