package registry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// appendLog is the durable half of the registry's file stores: an
// append-only file of newline-terminated records (JSON lines). Opening
// replays it and cuts a torn last line (a crash mid-write); append writes a
// line and returns its sequence number; durable(seq) returns once that line
// is on disk, and whoever syncs first syncs every line written so far, so
// concurrent writers share one fsync (group commit). After a failed write
// or sync the tail is uncertain and the log refuses further writes.
//
// The stores keep their own state in memory and their own mutex, taken
// before any of the log's: store mutex → syncMu → mu.
type appendLog struct {
	path string
	what string // "account log", for errors

	mu      sync.Mutex // guards f, written, failed, closed
	f       *os.File
	written uint64 // sequence number of the last line appended
	failed  error
	closed  bool

	syncMu sync.Mutex    // one fsync or rewrite at a time
	synced atomic.Uint64 // every line up to this sequence number is on disk
}

// openAppendLog opens (creating) the log at path and hands each whole line
// (with its newline) to replay, in order. A line longer than maxLine or one
// replay refuses fails the open; a last line without a newline is cut off.
// It returns the number of lines replayed.
func openAppendLog(path, what string, maxLine int, replay func(line []byte) error) (*appendLog, int, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	l := &appendLog{path: path, what: what, f: f}
	lines, err := l.replay(maxLine, replay)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return l, lines, nil
}

func (l *appendLog) replay(maxLine int, each func(line []byte) error) (int, error) {
	r := bufio.NewReaderSize(l.f, min(maxLine, 64<<10))
	var good int64
	lines := 0
	for {
		line, err := readLogLine(r, maxLine)
		if errors.Is(err, io.EOF) {
			break // a partial last line (no newline) is a torn write
		}
		if err == nil {
			err = each(line)
		}
		if err != nil {
			return 0, fmt.Errorf("line at offset %d: %w", good, err)
		}
		lines++
		good += int64(len(line))
	}
	if err := l.f.Truncate(good); err != nil {
		return 0, fmt.Errorf("cut torn tail: %w", err)
	}
	_, err := l.f.Seek(good, io.SeekStart)
	return lines, err
}

// readLogLine reads one line with its newline, at most max bytes; io.EOF
// for a last line without one.
func readLogLine(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		part, err := r.ReadSlice('\n')
		buf = append(buf, part...)
		if len(buf) > max {
			return nil, fmt.Errorf("longer than %d bytes", max)
		}
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}

// append writes line and a newline (not yet durable: see durable) and
// returns its sequence number.
func (l *appendLog) append(line []byte) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return 0, os.ErrClosed
	case l.failed != nil:
		return 0, fmt.Errorf("%s unusable after an earlier error: %w", l.what, l.failed)
	}
	if _, err := l.f.Write(append(line, '\n')); err != nil {
		l.failed = err
		return 0, fmt.Errorf("write %s: %w", l.what, err)
	}
	l.written++
	return l.written, nil
}

// durable returns once line seq is on disk.
func (l *appendLog) durable(seq uint64) error {
	if l.synced.Load() >= seq {
		return nil
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced.Load() >= seq {
		return nil
	}
	l.mu.Lock()
	upTo, failed, f := l.written, l.failed, l.f
	l.mu.Unlock()
	if failed != nil {
		return fmt.Errorf("sync %s: %w", l.what, failed)
	}
	if err := f.Sync(); err != nil {
		l.mu.Lock()
		l.failed = err
		l.mu.Unlock()
		return fmt.Errorf("sync %s: %w", l.what, err)
	}
	l.synced.Store(upTo)
	return nil
}

// rewrite replaces the log with the lines write produces: a new file,
// fsynced, renamed over the old one, the directory fsynced. The caller
// holds its store's mutex, so no line is appended meanwhile; everything
// written before is then durable. It returns the number of lines.
func (l *appendLog) rewrite(write func(w *bufio.Writer) (int, error)) (int, error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("rewrite %s: %w", l.what, err)
	}
	w := bufio.NewWriter(f)
	lines, err := write(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(l.path))
	}
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("rewrite %s: %w", l.what, err)
	}
	l.f.Close()
	l.f, l.failed = f, nil
	l.synced.Store(l.written) // everything held is in the new, synced file
	return lines, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close closes the file.
func (l *appendLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.f.Close()
}
