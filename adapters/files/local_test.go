package files_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatx/chatx/adapters/files"
	"github.com/chatx/chatx/domain"
)

func writeFile(t *testing.T, p string, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestScanFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "report.pdf")
	writeFile(t, p, "hello world")
	name, entries, err := files.NewLocalFiles().Scan(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if name != "report.pdf" || len(entries) != 1 || entries[0].Path != "report.pdf" || entries[0].Size != 11 {
		t.Fatalf("Scan = %q %+v", name, entries)
	}
	m, err := domain.NewManifest(name, entries)
	if err != nil || m.IsFolder() {
		t.Fatalf("manifest from a single file: %+v, %v", m, err)
	}
}

func TestScanFolder(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "photos")
	writeFile(t, filepath.Join(dir, "b.jpg"), "bb")
	writeFile(t, filepath.Join(dir, "a", "deep", "c.jpg"), "ccc")
	writeFile(t, filepath.Join(dir, "a", "x.txt"), "")
	outside := filepath.Join(t.TempDir(), "secret")
	writeFile(t, outside, "do not send")
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	name, entries, err := files.NewLocalFiles().Scan(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.FileEntry{{Path: "a/deep/c.jpg", Size: 3}, {Path: "a/x.txt", Size: 0}, {Path: "b.jpg", Size: 2}}
	if name != "photos" || len(entries) != len(want) {
		t.Fatalf("Scan = %q %+v, want photos %+v", name, entries, want)
	}
	for i := range want {
		if entries[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, entries[i], want[i])
		}
	}
	m, err := domain.NewManifest(name, entries)
	if err != nil || !m.IsFolder() {
		t.Fatalf("manifest from a folder: %+v, %v", m, err)
	}
}

func TestScanRefusesUnsafeNames(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"evil\x1b[31m.txt", "a:b.txt", "bidi\u202etxt.exe", "NUL.txt", "trailing. ", "x.0123abcd.part"} {
		t.Run(bad, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "folder")
			writeFile(t, filepath.Join(dir, "ok.txt"), "ok")
			writeFile(t, filepath.Join(dir, "sub", bad), "x")
			_, _, err := files.NewLocalFiles().Scan(context.Background(), dir)
			if !errors.Is(err, domain.ErrUnsafePath) {
				t.Fatalf("Scan of a folder holding %q: %v, want ErrUnsafePath", bad, err)
			}
			_, _, err = files.NewLocalFiles().Scan(context.Background(), filepath.Join(dir, "sub", bad))
			if !errors.Is(err, domain.ErrUnsafePath) {
				t.Fatalf("Scan of file %q: %v, want ErrUnsafePath", bad, err)
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	t.Parallel()
	lf := files.NewLocalFiles()
	if _, _, err := lf.Scan(context.Background(), filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing path: %v", err)
	}
	empty := t.TempDir()
	if err := os.Mkdir(filepath.Join(empty, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := lf.Scan(context.Background(), empty); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("folder without files: %v", err)
	}
	full := t.TempDir()
	writeFile(t, filepath.Join(full, "a"), "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := lf.Scan(ctx, full); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled scan: %v", err)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "f")
	writeFile(t, filepath.Join(dir, "sub", "data.bin"), "0123456789")
	lf := files.NewLocalFiles()
	for _, tc := range []struct{ path, rel string }{
		{filepath.Join(dir, "sub", "data.bin"), ""},
		{dir, "sub/data.bin"},
	} {
		src, err := lf.Open(tc.path, tc.rel)
		if err != nil {
			t.Fatal(err)
		}
		if src.Size() != 10 {
			t.Errorf("Size = %d", src.Size())
		}
		buf := make([]byte, 4)
		if n, err := src.ReadAt(buf, 6); n != 4 || string(buf) != "6789" || (err != nil && err != io.EOF) {
			t.Errorf("ReadAt = %d %q %v", n, buf, err)
		}
		if err := src.Close(); err != nil {
			t.Error(err)
		}
	}
	if _, err := lf.Open(dir, "../f/sub/data.bin"); !errors.Is(err, domain.ErrUnsafePath) {
		t.Errorf("Open with ../: %v", err)
	}
	outside := filepath.Join(t.TempDir(), "secret")
	writeFile(t, outside, "secret")
	if err := os.Symlink(outside, filepath.Join(dir, "swapped")); err != nil {
		t.Fatal(err)
	}
	if src, err := lf.Open(dir, "swapped"); err == nil {
		src.Close()
		t.Error("Open followed a link out of the folder")
	}
	if _, err := lf.Open(dir, "sub"); err == nil {
		t.Error("Open of a folder as a file succeeded")
	}
}
