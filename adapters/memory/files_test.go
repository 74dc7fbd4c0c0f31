package memory_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"testing"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/domain"
)

func TestLocalFilesScanAndOpen(t *testing.T) {
	ctx := context.Background()
	lf := memory.NewLocalFiles()
	lf.Put("/home/a/photos/b.jpg", []byte("bb"))
	lf.Put("/home/a/photos/2025/a.jpg", []byte("a"))
	lf.Put("/home/a/notes.txt", []byte("hello"))

	name, files, err := lf.Scan(ctx, "/home/a/notes.txt")
	if err != nil || name != "notes.txt" || len(files) != 1 || files[0].Path != "notes.txt" || files[0].Size != 5 {
		t.Fatalf("Scan of a file: %q %+v %v", name, files, err)
	}
	name, files, err = lf.Scan(ctx, "/home/a/photos/")
	if err != nil || name != "photos" {
		t.Fatalf("Scan of a folder: %q %v", name, err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	if !slices.Equal(paths, []string{"2025/a.jpg", "b.jpg"}) {
		t.Fatalf("folder paths %v", paths)
	}
	src, err := lf.Open("/home/a/photos", "2025/a.jpg")
	if err != nil || src.Size() != 1 {
		t.Fatalf("Open: %v", err)
	}
	b, _ := io.ReadAll(io.NewSectionReader(src, 0, src.Size()))
	if string(b) != "a" {
		t.Fatalf("read %q", b)
	}
	if _, _, err := lf.Scan(ctx, "/nowhere"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Scan of nothing: %v", err)
	}
}

func TestDownloadsCommitNeverOverwrites(t *testing.T) {
	d := memory.NewDownloads()
	d.PutFile("report.pdf", []byte("old"))
	d.PutFile("report (1).pdf", []byte("older"))
	id := domain.NewTransferID()

	tests := []struct{ rel, want string }{
		{"report.pdf", "report (2).pdf"},
		{"new.txt", "new.txt"},
		{"dir/new.txt", "dir/new.txt"},
		{"dir/new.txt", "dir/new (1).txt"},
		{".bashrc", ".bashrc"},
		{".bashrc", ".bashrc (1)"},
	}
	for _, tc := range tests {
		p, err := d.OpenPart(id, tc.rel)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Write([]byte("new " + tc.rel)); err != nil {
			t.Fatal(err)
		}
		got, err := p.Commit()
		if err != nil || got != tc.want {
			t.Fatalf("Commit of %s: %q, %v; want %q", tc.rel, got, err, tc.want)
		}
		if _, err := p.Write([]byte("x")); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("Write after Commit: %v, want ErrClosed", err)
		}
	}
	if b, _ := d.File("report.pdf"); string(b) != "old" {
		t.Fatalf("report.pdf overwritten: %q", b)
	}
	if _, err := d.OpenPart(id, "../escape"); !errors.Is(err, domain.ErrUnsafePath) {
		t.Fatalf("OpenPart outside the folder: %v, want ErrUnsafePath", err)
	}
}

func TestDownloadsPartResumeTruncateAndSpace(t *testing.T) {
	d := memory.NewDownloads()
	id := domain.NewTransferID()
	p, err := d.OpenPart(id, "f.bin")
	if err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("hello world"))
	p.Close()
	p, _ = d.OpenPart(id, "f.bin")
	if n, _ := p.Size(); n != 11 {
		t.Fatalf("reopened part has %d bytes, want 11 (kept for resume)", n)
	}
	if err := p.Truncate(5); err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("!"))
	buf := make([]byte, 6)
	if _, err := p.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if string(buf) != "hello!" {
		t.Fatalf("part holds %q", buf)
	}
	d.SetAvailable(3)
	if avail, _ := d.Available(); avail != 3 {
		t.Fatalf("Available = %d, want 3", avail)
	}
	if _, err := p.Write([]byte("four")); !errors.Is(err, memory.ErrNoSpace) {
		t.Fatalf("Write past the free space: %v, want ErrNoSpace", err)
	}
	if err := d.RemovePart(id, "f.bin"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Size(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Size of a removed part: %v", err)
	}
	if avail, _ := d.Available(); avail != 9 {
		t.Fatalf("Available after removing 6 bytes = %d, want 9", avail)
	}
}
