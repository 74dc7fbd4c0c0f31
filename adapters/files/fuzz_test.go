package files_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatx/chatx/adapters/files"
	"github.com/chatx/chatx/domain"
)

// FuzzOpenPart: whatever relative path a peer manages to get through,
// Downloads refuses it or creates the part inside the folder, commits it
// under a safe name inside the folder, and RemovePart of a refused or
// removed part leaves nothing.
func FuzzOpenPart(f *testing.F) {
	for _, s := range []string{"a.txt", "dir/sub/b.bin", "../x", "/etc/passwd", `..\x`, "NUL", "a/./b", "a/../../b", "x\x1b[31m", "\u202etxt.exe", "[red]x", "a//b", "a/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "dl")
		d, cleanup, err := files.NewDownloads(files.DownloadDir(dir), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		id := domain.NewTransferID()
		p, err := d.OpenPart(id, rel)
		if err != nil {
			if _, unsafe := domain.SafeRelativePath(rel); unsafe == nil && !partLike(rel) {
				t.Fatalf("OpenPart(%q) refused a safe path: %v", rel, err)
			}
			if !errors.Is(err, domain.ErrUnsafePath) {
				t.Fatalf("OpenPart(%q): %v, want ErrUnsafePath", rel, err)
			}
		} else {
			if _, err := p.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			final, err := p.Commit()
			if err != nil {
				t.Fatalf("Commit(%q): %v", rel, err)
			}
			if _, err := domain.SafeRelativePath(final); err != nil {
				t.Fatalf("final name %q of %q: %v", final, rel, err)
			}
			if got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(final))); err != nil || string(got) != "x" {
				t.Fatalf("final file %q: %q, %v", final, got, err)
			}
		}
		entries, err := os.ReadDir(parent)
		if err != nil || len(entries) != 1 || entries[0].Name() != "dl" {
			t.Fatalf("something was created beside the downloads folder: %v %v", entries, err)
		}
	})
}

// partLike reports whether a part of rel is shaped like a part file's name.
func partLike(rel string) bool {
	for _, p := range strings.Split(rel, "/") {
		if files.IsPartLike(p) {
			return true
		}
	}
	return false
}
