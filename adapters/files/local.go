package files

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// LocalFiles reads the files and folders the user offers, from the OS file system.
type LocalFiles struct{}

var _ ports.LocalFiles = (*LocalFiles)(nil)

// NewLocalFiles returns the local file reader.
func NewLocalFiles() *LocalFiles { return &LocalFiles{} }

// Scan describes path for an offer. A regular file (a symbolic link given by
// the user is followed) is one entry named by its base name. A folder gives
// every regular file below it; links and special files below it are skipped,
// never followed. A name that is not a safe file name (see
// domain.SafeFileName), or one shaped like a partial download's
// ("x.0123abcd.part", which receivers refuse), is an error wrapping
// domain.ErrUnsafePath that names the file, rather than a file silently
// renamed or left out; a folder with
// more than domain.MaxTransferFiles files or a file over domain.MaxFileSize
// is domain.ErrTooLarge; a folder without regular files is domain.ErrNotFound.
func (l *LocalFiles) Scan(ctx context.Context, path string) (string, []domain.FileEntry, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, fmt.Errorf("scan %s: %w", path, err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return "", nil, fmt.Errorf("scan %s: %w", path, err)
	}
	base := filepath.Base(abs)
	switch {
	case info.Mode().IsRegular():
		if domain.SafeFileName(base) != base || isPartLike(base) {
			return "", nil, fmt.Errorf("scan %s: %w: the name %q would not survive the transfer, rename the file first", path, domain.ErrUnsafePath, base)
		}
		if info.Size() > domain.MaxFileSize {
			return "", nil, fmt.Errorf("scan %s: %w: %d bytes (at most %d)", path, domain.ErrTooLarge, info.Size(), int64(domain.MaxFileSize))
		}
		return base, []domain.FileEntry{{Path: base, Size: info.Size()}}, nil
	case info.IsDir():
		if isPartLike(domain.SafeFileName(base)) {
			return "", nil, fmt.Errorf("scan %s: %w: the name %q would not survive the transfer, rename the folder first", path, domain.ErrUnsafePath, base)
		}
		files, err := scanDir(ctx, abs)
		if err != nil {
			return "", nil, fmt.Errorf("scan %s: %w", path, err)
		}
		return domain.SafeFileName(base), files, nil
	default:
		return "", nil, fmt.Errorf("scan %s: %w: not a regular file or folder (%s)", path, domain.ErrUnsafePath, info.Mode().Type())
	}
}

func scanDir(ctx context.Context, dir string) ([]domain.FileEntry, error) {
	var files []domain.FileEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if domain.SafeFileName(d.Name()) != d.Name() || isPartLike(d.Name()) {
				return fmt.Errorf("%w: the folder name %q would not survive the transfer, rename it first", domain.ErrUnsafePath, rel)
			}
			return nil
		}
		if !d.Type().IsRegular() { // symbolic links, sockets, devices: never followed
			return nil
		}
		if _, err := domain.SafeRelativePath(rel); err != nil || isPartLike(d.Name()) {
			return fmt.Errorf("%w: the file name %q would not survive the transfer, rename it first", domain.ErrUnsafePath, rel)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > domain.MaxFileSize {
			return fmt.Errorf("%w: %s has %d bytes (at most %d)", domain.ErrTooLarge, rel, info.Size(), int64(domain.MaxFileSize))
		}
		if len(files) == domain.MaxTransferFiles {
			return fmt.Errorf("%w: more than %d files in one folder", domain.ErrTooLarge, domain.MaxTransferFiles)
		}
		files = append(files, domain.FileEntry{Path: rel, Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no regular files in the folder", domain.ErrNotFound)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// Open opens one file named by Scan: rel is "" for a single file, else the
// entry's slash-separated path inside the folder path. A folder's files are
// opened through an os.Root, so a link swapped in after Scan cannot lead out
// of the folder; what is opened must still be a regular file.
func (l *LocalFiles) Open(path, rel string) (ports.FileSource, error) {
	var (
		f   *os.File
		err error
	)
	if rel == "" {
		f, err = os.Open(path)
	} else {
		if _, err := domain.SafeRelativePath(rel); err != nil {
			return nil, fmt.Errorf("open %s in %s: %w", rel, path, err)
		}
		var root *os.Root
		root, err = os.OpenRoot(path)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		defer root.Close()
		f, err = root.Open(filepath.FromSlash(rel))
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Join(path, rel), err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", f.Name(), errNotRegular)
	}
	return &Source{f: f, size: info.Size()}, nil
}

var errNotRegular = errors.New("not a regular file")

// Source is one local file being sent. Its size is the size when it was
// opened; ReadAt past it reports io.EOF as the file would.
type Source struct {
	f    *os.File
	size int64
}

var _ ports.FileSource = (*Source)(nil)

// ReadAt reads len(p) bytes at off.
func (s *Source) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }

// Size is the file's size in bytes when it was opened.
func (s *Source) Size() int64 { return s.size }

// Close closes the file.
func (s *Source) Close() error { return s.f.Close() }
