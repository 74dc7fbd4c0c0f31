package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var (
	_ ports.LocalFiles = (*LocalFiles)(nil)
	_ ports.Downloads  = (*Downloads)(nil)
	_ ports.PartFile   = (*partFile)(nil)
	_ ports.FileSource = (*fileSource)(nil)
)

// ErrNoSpace: a Downloads folder has no room left (see SetAvailable).
var ErrNoSpace = errors.New("no space left in the downloads folder")

// LocalFiles is a ports.LocalFiles over files a test puts in (Put). Paths are
// slash-separated; a folder is any path that prefixes some file's path.
// It is safe for concurrent use.
type LocalFiles struct {
	mu    sync.RWMutex
	files map[string][]byte
}

// NewLocalFiles returns an empty file system.
func NewLocalFiles() *LocalFiles { return &LocalFiles{files: make(map[string][]byte)} }

// Put stores a copy of data at p (cleaned, slash-separated), replacing a file.
func (lf *LocalFiles) Put(p string, data []byte) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	lf.files[path.Clean(p)] = bytes.Clone(data)
}

// Scan describes a file or folder for an offer (hashes left zero).
func (lf *LocalFiles) Scan(ctx context.Context, p string) (string, []domain.FileEntry, error) {
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	p = path.Clean(p)
	lf.mu.RLock()
	defer lf.mu.RUnlock()
	name := path.Base(p)
	if data, ok := lf.files[p]; ok {
		return name, []domain.FileEntry{{Path: name, Size: int64(len(data))}}, nil
	}
	prefix := p + "/"
	if p == "/" {
		prefix = "/"
	}
	var files []domain.FileEntry
	for fp, data := range lf.files {
		if rel, ok := strings.CutPrefix(fp, prefix); ok {
			files = append(files, domain.FileEntry{Path: rel, Size: int64(len(data))})
		}
	}
	if len(files) == 0 {
		return "", nil, fmt.Errorf("scan %s: %w", p, fs.ErrNotExist)
	}
	if len(files) > domain.MaxTransferFiles {
		return "", nil, fmt.Errorf("scan %s: %w: %d files", p, domain.ErrTooLarge, len(files))
	}
	slices.SortFunc(files, func(a, b domain.FileEntry) int { return strings.Compare(a.Path, b.Path) })
	return name, files, nil
}

// Open opens one file named by Scan (rel "" for a single file).
func (lf *LocalFiles) Open(p, rel string) (ports.FileSource, error) {
	full := path.Clean(p)
	if rel != "" {
		full = path.Join(full, rel)
	}
	lf.mu.RLock()
	data, ok := lf.files[full]
	lf.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("open %s: %w", full, fs.ErrNotExist)
	}
	return &fileSource{Reader: bytes.NewReader(data), size: int64(len(data))}, nil
}

type fileSource struct {
	*bytes.Reader
	size int64
}

func (f *fileSource) Size() int64  { return f.size }
func (f *fileSource) Close() error { return nil }

// Downloads is a ports.Downloads in memory: committed files by relative
// path, part files by transfer and path, and a capacity that SetAvailable
// lowers to simulate a full disk (writes then fail with ErrNoSpace). It is
// safe for concurrent use.
type Downloads struct {
	mu       sync.Mutex
	files    map[string][]byte
	parts    map[partKey]*partData
	used     int64
	capacity int64
}

type partKey struct {
	id  domain.TransferID
	rel string
}

type partData struct{ data []byte }

// DefaultDownloadsCapacity is the size of a new Downloads folder.
const DefaultDownloadsCapacity = 1 << 40

// NewDownloads returns an empty folder of DefaultDownloadsCapacity bytes.
func NewDownloads() *Downloads {
	return &Downloads{files: make(map[string][]byte), parts: make(map[partKey]*partData), capacity: DefaultDownloadsCapacity}
}

// SetAvailable makes n more bytes fit from now on (0: the disk is full).
func (d *Downloads) SetAvailable(n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.capacity = d.used + n
}

// Available is how many more bytes fit.
func (d *Downloads) Available() (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return max(0, d.capacity-d.used), nil
}

// File returns a copy of the committed file at rel.
func (d *Downloads) File(rel string) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.files[rel]
	return bytes.Clone(b), ok
}

// Files lists the committed files, sorted.
func (d *Downloads) Files() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.files))
	for k := range d.files {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Part returns a copy of a part file's bytes.
func (d *Downloads) Part(id domain.TransferID, rel string) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.parts[partKey{id, rel}]
	if !ok {
		return nil, false
	}
	return bytes.Clone(p.data), true
}

// PutPart stores a part file as a crashed earlier run would have left it.
func (d *Downloads) PutPart(id domain.TransferID, rel string, data []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := partKey{id, rel}
	if p, ok := d.parts[k]; ok {
		d.used -= int64(len(p.data))
	}
	d.parts[k] = &partData{data: bytes.Clone(data)}
	d.used += int64(len(data))
}

// PutFile stores a committed file (to test that Commit never overwrites).
func (d *Downloads) PutFile(rel string, data []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.used += int64(len(data)) - int64(len(d.files[rel]))
	d.files[rel] = bytes.Clone(data)
}

func checkRel(rel string) error {
	safe, err := domain.SafeRelativePath(rel)
	if err != nil {
		return err
	}
	if safe != rel {
		return fmt.Errorf("%w: %q", domain.ErrUnsafePath, rel)
	}
	return nil
}

// OpenPart opens (creating) the part file of one file of a transfer.
func (d *Downloads) OpenPart(id domain.TransferID, rel string) (ports.PartFile, error) {
	if err := checkRel(rel); err != nil {
		return nil, fmt.Errorf("open part %s: %w", rel, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	k := partKey{id, rel}
	p, ok := d.parts[k]
	if !ok {
		p = &partData{}
		d.parts[k] = p
	}
	return &partFile{d: d, key: k, p: p}, nil
}

// RemovePart deletes a transfer's part file, if any.
func (d *Downloads) RemovePart(id domain.TransferID, rel string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := partKey{id, rel}
	if p, ok := d.parts[k]; ok {
		d.used -= int64(len(p.data))
		delete(d.parts, k)
	}
	return nil
}

// partFile is an open part. Its methods lock the folder.
type partFile struct {
	d      *Downloads
	key    partKey
	p      *partData
	closed bool
}

func (f *partFile) check() error {
	if f.closed {
		return fs.ErrClosed
	}
	if cur, ok := f.d.parts[f.key]; !ok || cur != f.p {
		return fmt.Errorf("part %s: removed: %w", f.key.rel, fs.ErrNotExist)
	}
	return nil
}

func (f *partFile) Write(b []byte) (int, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.check(); err != nil {
		return 0, err
	}
	if f.d.used+int64(len(b)) > f.d.capacity {
		return 0, fmt.Errorf("write part %s: %w", f.key.rel, ErrNoSpace)
	}
	f.p.data = append(f.p.data, b...)
	f.d.used += int64(len(b))
	return len(b), nil
}

func (f *partFile) ReadAt(b []byte, off int64) (int, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.check(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("read part %s at %d: negative offset", f.key.rel, off)
	}
	if off >= int64(len(f.p.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.p.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *partFile) Size() (int64, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.check(); err != nil {
		return 0, err
	}
	return int64(len(f.p.data)), nil
}

func (f *partFile) Truncate(n int64) error {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.check(); err != nil {
		return err
	}
	if n < 0 || n > int64(len(f.p.data)) {
		return fmt.Errorf("truncate part %s to %d: outside 0..%d", f.key.rel, n, len(f.p.data))
	}
	f.d.used -= int64(len(f.p.data)) - n
	f.p.data = f.p.data[:n:n]
	return nil
}

// Commit gives the part its final name, never overwriting: "name (1).ext".
func (f *partFile) Commit() (string, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.check(); err != nil {
		return "", err
	}
	dir, base := path.Split(f.key.rel)
	ext := path.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	if stem == "" { // ".bashrc": the whole name is the stem
		stem, ext = base, ""
	}
	name := f.key.rel
	for i := 1; ; i++ {
		if _, taken := f.d.files[name]; !taken {
			break
		}
		if i > 10000 {
			return "", fmt.Errorf("commit %s: %w: too many copies", f.key.rel, domain.ErrTooLarge)
		}
		name = fmt.Sprintf("%s%s (%d)%s", dir, stem, i, ext)
	}
	f.d.files[name] = f.p.data
	delete(f.d.parts, f.key)
	f.closed = true
	return name, nil
}

func (f *partFile) Close() error {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	f.closed = true
	return nil
}
