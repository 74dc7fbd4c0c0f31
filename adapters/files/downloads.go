package files

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// DownloadDir is the folder received files land in.
type DownloadDir string

// Permissions of what Downloads creates: private to the user.
const (
	dirPerm  = 0o700
	filePerm = 0o600
)

// maxCopies bounds the "name (n).ext" candidates tried before giving up.
const maxCopies = 9999

// Downloads is the downloads folder, opened as an os.Root so that nothing
// done through it can reach outside it.
type Downloads struct {
	root   *os.Root
	dir    string
	logger *slog.Logger

	// The ways to rename without replacing, best first; tests switch the
	// better ones off to exercise the fallbacks.
	noReplace func(root *os.Root, oldName, newName string) error
	link      func(root *os.Root, oldName, newName string) error
}

var _ ports.Downloads = (*Downloads)(nil)

// NewDownloads opens (creating it with mode 0700 if missing) the downloads
// folder dir. The cleanup closes it.
func NewDownloads(dir DownloadDir, logger *slog.Logger) (*Downloads, func(), error) {
	if dir == "" {
		return nil, nil, errors.New("downloads folder: no path given")
	}
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(string(dir), dirPerm); err != nil {
		return nil, nil, fmt.Errorf("create downloads folder %s: %w", dir, err)
	}
	root, err := os.OpenRoot(string(dir))
	if err != nil {
		return nil, nil, fmt.Errorf("open downloads folder %s: %w", dir, err)
	}
	d := &Downloads{root: root, dir: string(dir), logger: logger, noReplace: renameat2NoReplace,
		link: func(r *os.Root, o, n string) error { return r.Link(o, n) }}
	return d, func() { d.Close() }, nil
}

// Dir is the folder's path.
func (d *Downloads) Dir() string { return d.dir }

// Close closes the folder; parts already open stay usable.
func (d *Downloads) Close() error { return d.root.Close() }

// partName is where the part of file rel of transfer id lives: next to the
// final name, "<name>.<first 8 hex digits of id>.part", so parts of two
// transfers of the same name never mix.
func partName(id domain.TransferID, rel string) string {
	return rel + "." + id.Short() + ".part"
}

// errPartLikeName refuses a path one of whose parts is shaped like a part
// file's name.
var errPartLikeName = errors.New("a name of the form NAME.XXXXXXXX.part is kept for partial downloads")

// checkNotPartLike refuses a relative path with a part shaped like a part
// file's name ("x.0123abcd.part"). Such a file, once committed, would be
// opened as the part of a later file "x" of a transfer whose ID starts with
// those digits (a sender picks its own IDs), which would then append to it,
// truncate it on a restart and rename it away.
func checkNotPartLike(rel string) error {
	for part := range strings.SplitSeq(rel, "/") {
		if isPartLike(part) {
			return fmt.Errorf("%w: %q: %w", domain.ErrUnsafePath, rel, errPartLikeName)
		}
	}
	return nil
}

// isPartLike reports whether name ends in "." + 8 hex digits + ".part", as
// partName's results do (in any case: some file systems ignore it).
func isPartLike(name string) bool {
	stem, ok := cutSuffixFold(name, ".part")
	if !ok || len(stem) < 9 || stem[len(stem)-9] != '.' {
		return false
	}
	for _, c := range []byte(stem[len(stem)-8:]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) < len(suffix) || !strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s, false
	}
	return s[:len(s)-len(suffix)], true
}

// OpenPart opens, creating it (and its parent folders) if needed, the part
// file of file rel of transfer id. rel must be a safe relative path
// (domain.SafeRelativePath) with no part shaped like a part file's name
// ("x.0123abcd.part"), else the error wraps domain.ErrUnsafePath. An
// existing part is kept and writing continues at its end.
func (d *Downloads) OpenPart(id domain.TransferID, rel string) (ports.PartFile, error) {
	rel, err := domain.SafeRelativePath(rel)
	if err == nil {
		err = checkNotPartLike(rel)
	}
	if err != nil {
		return nil, fmt.Errorf("open part: %w", err)
	}
	if dir := path.Dir(rel); dir != "." {
		if err := d.root.MkdirAll(dir, dirPerm); err != nil {
			return nil, fmt.Errorf("create folder %s in downloads: %w", dir, err)
		}
	}
	name := partName(id, rel)
	f, err := d.root.OpenFile(name, os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return nil, fmt.Errorf("open part %s: %w", name, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat part %s: %w", name, err)
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open part %s: %w: %w", name, domain.ErrUnsafePath, errNotRegular)
	}
	off := info.Size()
	part := &Part{d: d, f: f, rel: rel, name: name, off: off}
	part.wb = writeBehind{from: off,
		start:  func(at, n int64) error { return startWriteback(f, at, n) },
		settle: func(at, n int64) error { return settleWriteback(f, at, n) }}
	return part, nil
}

// RemovePart deletes the part file of file rel of transfer id, and the
// folders above it that are left empty (those OpenPart made for a folder
// offer); no error when there is none.
func (d *Downloads) RemovePart(id domain.TransferID, rel string) error {
	rel, err := domain.SafeRelativePath(rel)
	if err != nil {
		return fmt.Errorf("remove part: %w", err)
	}
	name := partName(id, rel)
	if err := d.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove part %s: %w", name, err)
	}
	for dir := path.Dir(rel); dir != "."; dir = path.Dir(dir) {
		if d.root.Remove(dir) != nil { // not empty (or gone): keep it and what is above
			break
		}
	}
	return nil
}

// Available is the free space of the folder's file system in bytes, as an
// unprivileged user may use it.
func (d *Downloads) Available() (int64, error) {
	n, err := availableBytes(d.dir)
	if err != nil {
		return 0, fmt.Errorf("free space of %s: %w", d.dir, err)
	}
	return n, nil
}

// Part is a partial download. It is not safe for concurrent use, except
// ReadAt, which may run beside Write.
type Part struct {
	d    *Downloads
	f    *os.File
	rel  string
	name string

	mu     sync.Mutex
	off    int64
	wb     writeBehind
	closed bool
}

var _ ports.PartFile = (*Part)(nil)

// Write appends p at the part's end (or where Truncate left it).
func (p *Part) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, fmt.Errorf("write part %s: %w", p.name, os.ErrClosed)
	}
	n, err := p.f.WriteAt(b, p.off)
	p.off += int64(n)
	p.wb.wrote(p.off)
	if err != nil {
		return n, fmt.Errorf("write part %s: %w", p.name, err)
	}
	return n, nil
}

// ReadAt reads from the part, to hash what is already there.
func (p *Part) ReadAt(b []byte, off int64) (int, error) { return p.f.ReadAt(b, off) }

// Size is the number of bytes in the part now.
func (p *Part) Size() (int64, error) {
	info, err := p.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat part %s: %w", p.name, err)
	}
	return info.Size(), nil
}

// Truncate cuts the part to n bytes; the next Write goes at n.
func (p *Part) Truncate(n int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n < 0 {
		return fmt.Errorf("truncate part %s to %d bytes: negative size", p.name, n)
	}
	if err := p.f.Truncate(n); err != nil {
		return fmt.Errorf("truncate part %s: %w", p.name, err)
	}
	p.off = n
	p.wb.truncated(n)
	return nil
}

// Close closes the part, keeping it for a resume.
func (p *Part) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("close part %s: %w", p.name, err)
	}
	return nil
}

// Commit flushes the part to disk, closes it and renames it to its final
// name: rel, or "name (n).ext" when rel is taken. The rename never replaces
// an existing file, even when another process creates the same name at the
// same moment. It returns the relative name used. On error the part is kept
// (closed) under its part name.
func (p *Part) Commit() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return "", fmt.Errorf("commit part %s: %w", p.name, os.ErrClosed)
	}
	p.closed = true
	if err := p.f.Sync(); err != nil {
		p.f.Close()
		return "", fmt.Errorf("flush part %s: %w", p.name, err)
	}
	if err := p.f.Close(); err != nil {
		return "", fmt.Errorf("close part %s: %w", p.name, err)
	}
	for i := 0; i <= maxCopies; i++ {
		final := copyName(p.rel, i)
		err := p.d.renameNoReplace(p.name, final)
		if err == nil {
			p.d.syncDir(path.Dir(final))
			p.d.logger.Debug("download committed", "name", final)
			return final, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("rename part %s to %s: %w", p.name, final, err)
		}
	}
	return "", fmt.Errorf("rename part %s: %w: %s and %d numbered copies exist", p.name, fs.ErrExist, p.rel, maxCopies)
}

// copyName is rel for n == 0, else rel with " (n)" before its extension.
// The result stays a safe path: the extension is short and the base name
// leaves room for the suffix (domain.MaxFileNameBytes).
func copyName(rel string, n int) string {
	if n == 0 {
		return rel
	}
	dir, base := path.Split(rel)
	ext := ""
	if i := strings.LastIndexByte(base, '.'); i > 0 && len(base)-i <= 16 {
		base, ext = base[:i], base[i:]
	}
	suffix := " (" + strconv.Itoa(n) + ")"
	if keep := domain.MaxFileNameBytes - len(suffix) - len(ext); len(base) > keep {
		for keep > 0 && !utf8.RuneStart(base[keep]) {
			keep--
		}
		base = strings.TrimRight(base[:keep], " .")
	}
	return dir + base + suffix + ext
}

// renameNoReplace renames old to new inside the root, failing with an error
// wrapping fs.ErrExist when new exists. It uses renameat2(RENAME_NOREPLACE)
// where the system offers it, else a hard link (which never replaces)
// followed by removing old, else an O_EXCL placeholder that claims the name
// before a rename over it.
func (d *Downloads) renameNoReplace(oldName, newName string) error {
	err := d.noReplace(d.root, oldName, newName)
	if !errors.Is(err, errNoReplaceUnsupported) {
		return err
	}
	if err := d.link(d.root, oldName, newName); err == nil {
		if err := d.root.Remove(oldName); err != nil {
			d.logger.Warn("remove part after link", "err", err)
		}
		return nil
	} else if errors.Is(err, fs.ErrExist) {
		return err
	}
	ph, err := d.root.OpenFile(newName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return err
	}
	ph.Close()
	if err := d.root.Rename(oldName, newName); err != nil {
		d.root.Remove(newName)
		return err
	}
	return nil
}

// syncDir makes a rename in dir durable, as far as the system allows.
func (d *Downloads) syncDir(dir string) {
	f, err := d.root.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	_ = f.Sync() // best effort: some file systems cannot sync folders
}
