package files_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/chatx/chatx/adapters/files"
	"github.com/chatx/chatx/domain"
)

func newDownloads(t *testing.T, dir string) *files.Downloads {
	t.Helper()
	d, cleanup, err := files.NewDownloads(files.DownloadDir(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return d
}

// tree lists every path below dir (relative, slash-separated, sorted),
// without following links.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func receive(t *testing.T, d *files.Downloads, rel string, data []byte) string {
	t.Helper()
	p, err := d.OpenPart(domain.NewTransferID(), rel)
	if err != nil {
		t.Fatalf("OpenPart(%q): %v", rel, err)
	}
	if _, err := p.Write(data); err != nil {
		t.Fatal(err)
	}
	final, err := p.Commit()
	if err != nil {
		t.Fatalf("Commit(%q): %v", rel, err)
	}
	return final
}

func TestNewDownloadsCreatesPrivateFolder(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "Downloads")
	newDownloads(t, dir)
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !info.IsDir() || info.Mode().Perm()&0o077 != 0 {
		t.Fatalf("downloads folder mode %v, want a private folder", info.Mode())
	}
}

func TestPartResumeAndCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := newDownloads(t, dir)
	id := domain.NewTransferID()
	p, err := d.OpenPart(id, "album/disc 1/track.flac")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); !contains(got, "album/disc 1/track.flac."+id.Short()+".part") {
		t.Fatalf("part not where expected: %v", got)
	}

	// A restart opens the same part and carries on from its end.
	p, err = d.OpenPart(id, "album/disc 1/track.flac")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.Size(); err != nil || n != 6 {
		t.Fatalf("Size after resume = %d, %v", n, err)
	}
	buf := make([]byte, 5)
	if _, err := p.ReadAt(buf, 0); err != nil || string(buf) != "hello" {
		t.Fatalf("ReadAt = %q, %v", buf, err)
	}
	if _, err := p.Write([]byte("wrold")); err != nil {
		t.Fatal(err)
	}
	// The sender's bytes differed from the 6th on: cut and write again.
	if err := p.Truncate(6); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	final, err := p.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if final != "album/disc 1/track.flac" {
		t.Fatalf("final name %q", final)
	}
	got, err := os.ReadFile(filepath.Join(dir, "album", "disc 1", "track.flac"))
	if err != nil || string(got) != "hello world" {
		t.Fatalf("final file = %q, %v", got, err)
	}
	if want := []string{"album", "album/disc 1", "album/disc 1/track.flac"}; !equal(tree(t, dir), want) {
		t.Fatalf("folder holds %v, want %v", tree(t, dir), want)
	}
	if _, err := p.Write([]byte("x")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if _, err := p.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
}

func TestUnsafeRelativePathsRefused(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dl")
	d := newDownloads(t, dir)
	for _, rel := range []string{"", "../x", "/etc/passwd", "a/../../x", "a//b", "./a", `..\x`, `C:\x`, "NUL", "a\x1b[2Jb", "x\r", "\u202etxt.exe", strings.Repeat("a", 300)} {
		if _, err := d.OpenPart(domain.NewTransferID(), rel); !errors.Is(err, domain.ErrUnsafePath) {
			t.Errorf("OpenPart(%q) = %v, want ErrUnsafePath", rel, err)
		}
		if err := d.RemovePart(domain.NewTransferID(), rel); !errors.Is(err, domain.ErrUnsafePath) {
			t.Errorf("RemovePart(%q) = %v, want ErrUnsafePath", rel, err)
		}
	}
	if got := tree(t, filepath.Dir(dir)); !equal(got, []string{"dl"}) {
		t.Fatalf("something was created: %v", got)
	}
}

func TestHostileNamesStayInside(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, "downloads")
	d := newDownloads(t, dir)
	hostile := []string{
		"../../x", "/etc/passwd", `..\x`, `..\..\x`, `C:\x`, `C:x`, "NUL", "nul.txt", "COM1 ", "com1.tar.gz",
		"evil\x1b[31mred\x1b[0m.txt", "\x1b]0;title\x07", "line\rbreak", "new\nline", "\u202etxt.exe",
		"[red]alert[-]", "[::b]bold", "..", ".", "", " ", "...", strings.Repeat("A", 10000),
		strings.Repeat("é", 5000) + ".txt", "a\x00b", "\xff\xfe.bin",
	}
	finals := map[string]bool{}
	for i, name := range hostile {
		safe := domain.SafeFileName(name)
		data := []byte(fmt.Sprintf("file %d", i))
		final := receive(t, d, safe, data)
		if _, err := domain.SafeRelativePath(final); err != nil || strings.Contains(final, "/") {
			t.Errorf("%q: final name %q is not a safe base name: %v", name, final, err)
		}
		for _, r := range final {
			if r < 0x20 || r == 0x7f || r == 0x202e {
				t.Errorf("%q: final name %q holds %U", name, final, r)
			}
		}
		if finals[final] {
			t.Errorf("%q: final name %q used twice", name, final)
		}
		finals[final] = true
		got, err := os.ReadFile(filepath.Join(dir, final))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%q: %s holds %q, %v", name, final, got, err)
		}
	}
	// Everything below the temp folder is the downloads folder and the files above.
	want := []string{"downloads"}
	for f := range finals {
		want = append(want, "downloads/"+f)
	}
	sort.Strings(want)
	if got := tree(t, parent); !equal(got, want) {
		t.Fatalf("temp folder holds %q\nwant %q", got, want)
	}
}

func TestPlantedSymlinksCannotLeadOut(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "victim")
	writeFile(t, victim, "untouched")
	dir := filepath.Join(parent, "downloads")
	d := newDownloads(t, dir)

	// A folder component that is a link out of the folder.
	if err := os.Symlink(outside, filepath.Join(dir, "evil")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenPart(domain.NewTransferID(), "evil/x.txt"); err == nil {
		t.Error("OpenPart through a linked folder succeeded")
	}
	if _, err := d.OpenPart(domain.NewTransferID(), "evil/new/x.txt"); err == nil {
		t.Error("OpenPart creating folders through a linked folder succeeded")
	}
	// A link to an absolute path outside, planted as a folder deeper down.
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../outside", filepath.Join(dir, "real", "up")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenPart(domain.NewTransferID(), "real/up/victim"); err == nil {
		t.Error("OpenPart through a relative link out succeeded")
	}

	// A part name planted as a link to a file outside.
	id := domain.NewTransferID()
	if err := os.Symlink(victim, filepath.Join(dir, "victim."+id.Short()+".part")); err != nil {
		t.Fatal(err)
	}
	if p, err := d.OpenPart(id, "victim"); err == nil {
		p.Write([]byte("overwritten"))
		p.Close()
		t.Error("OpenPart followed a planted part link")
	}

	// The final name planted as a link: the commit picks another name.
	if err := os.Symlink(victim, filepath.Join(dir, "report.txt")); err != nil {
		t.Fatal(err)
	}
	if final := receive(t, d, "report.txt", []byte("mine")); final != "report (1).txt" {
		t.Errorf("commit over a planted link used %q", final)
	}

	if got, err := os.ReadFile(victim); err != nil || string(got) != "untouched" {
		t.Fatalf("victim now holds %q, %v", got, err)
	}
	if got := tree(t, outside); !equal(got, []string{"victim"}) {
		t.Fatalf("outside folder now holds %v", got)
	}
}

// commitModes are the ways Commit can rename without replacing: renameat2,
// hard link, O_EXCL placeholder.
var commitModes = []struct {
	name  string
	level int
}{{"renameat2", 0}, {"link", 1}, {"placeholder", 2}}

func newDownloadsMode(t *testing.T, dir string, level int) *files.Downloads {
	d := newDownloads(t, dir)
	if level > 0 {
		files.UseFallbacks(d, level)
	}
	return d
}

func TestCommitNeverOverwrites(t *testing.T) {
	t.Parallel()
	for _, mode := range commitModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testCommitNeverOverwrites(t, mode.level)
		})
	}
}

func testCommitNeverOverwrites(t *testing.T, level int) {
	dir := t.TempDir()
	d := newDownloadsMode(t, dir, level)
	writeFile(t, filepath.Join(dir, "notes.txt"), "original")
	writeFile(t, filepath.Join(dir, "notes (1).txt"), "first copy")
	if err := os.Mkdir(filepath.Join(dir, "notes (2).txt"), 0o700); err != nil {
		t.Fatal(err)
	}
	if final := receive(t, d, "notes.txt", []byte("new")); final != "notes (3).txt" {
		t.Fatalf("final name %q, want notes (3).txt", final)
	}
	for name, want := range map[string]string{"notes.txt": "original", "notes (1).txt": "first copy", "notes (3).txt": "new"} {
		if got, _ := os.ReadFile(filepath.Join(dir, name)); string(got) != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
	// A name at the length limit stays a safe name with its number.
	long := strings.Repeat("n", domain.MaxFileNameBytes-4) + ".txt"
	receive(t, d, long, []byte("1"))
	second := receive(t, d, long, []byte("2"))
	if second == long || !strings.HasSuffix(second, " (1).txt") {
		t.Errorf("second copy of a long name: %q", second)
	}
	if _, err := domain.SafeRelativePath(second); err != nil {
		t.Errorf("numbered long name is unsafe: %v", err)
	}
}

func TestConcurrentCommitsGetDistinctNames(t *testing.T) {
	t.Parallel()
	for _, mode := range commitModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testConcurrentCommits(t, mode.level)
		})
	}
}

func testConcurrentCommits(t *testing.T, level int) {
	dir := t.TempDir()
	d := newDownloadsMode(t, dir, level)
	const n = 16
	parts := make([]interface {
		Write([]byte) (int, error)
		Commit() (string, error)
	}, n)
	for i := range parts {
		p, err := d.OpenPart(domain.NewTransferID(), "same.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(p, "content %d", i); err != nil {
			t.Fatal(err)
		}
		parts[i] = p
	}
	names := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			names[i], errs[i] = parts[i].Commit()
		}()
	}
	close(start)
	wg.Wait()
	seen := map[string]bool{}
	for i := range names {
		if errs[i] != nil {
			t.Fatalf("commit %d: %v", i, errs[i])
		}
		if seen[names[i]] {
			t.Fatalf("name %q used twice", names[i])
		}
		seen[names[i]] = true
		got, err := os.ReadFile(filepath.Join(dir, names[i]))
		if err != nil || string(got) != fmt.Sprintf("content %d", i) {
			t.Fatalf("%s holds %q, %v", names[i], got, err)
		}
	}
	if got := tree(t, dir); len(got) != n {
		t.Fatalf("folder holds %v", got)
	}
}

func TestRemovePartLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := newDownloads(t, dir)
	writeFile(t, filepath.Join(dir, "keep", "mine.txt"), "user's own file")
	id := domain.NewTransferID()
	rels := []string{"single.iso", "folder/a/b/deep.txt", "folder/top.txt", "keep/theirs.txt"}
	for _, rel := range rels {
		p, err := d.OpenPart(id, rel)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Write([]byte("partial")); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range rels {
		if err := d.RemovePart(id, rel); err != nil {
			t.Fatal(err)
		}
		if err := d.RemovePart(id, rel); err != nil {
			t.Fatalf("second RemovePart: %v", err)
		}
	}
	if got, want := tree(t, dir), []string{"keep", "keep/mine.txt"}; !equal(got, want) {
		t.Fatalf("after RemovePart the folder holds %v, want %v", got, want)
	}
}

func TestAvailable(t *testing.T) {
	t.Parallel()
	d := newDownloads(t, t.TempDir())
	n, err := d.Available()
	if err != nil || n <= 0 {
		t.Fatalf("Available = %d, %v", n, err)
	}
}

func TestFullDisk(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here: %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	dir := filepath.Join(mnt, "downloads")
	d := newDownloads(t, dir)
	avail, err := d.Available()
	if err != nil || avail > 1<<20 {
		t.Fatalf("Available on a 1 MiB disk = %d, %v", avail, err)
	}
	id := domain.NewTransferID()
	p, err := d.OpenPart(id, "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	rand.Read(chunk)
	var werr error
	for i := 0; i < 64 && werr == nil; i++ { // 4 MiB into 1 MiB
		_, werr = p.Write(chunk)
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("writing past a full disk: %v, want ENOSPC", werr)
	}
	if !strings.Contains(werr.Error(), "big.bin") {
		t.Errorf("error does not say which file: %v", werr)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "big.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a file exists under the final name: %v", err)
	}
	if err := d.RemovePart(id, "big.bin"); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Fatalf("after RemovePart the folder holds %v", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A peer picks its transfer IDs, so a file it names "x.<8 hex>.part" would,
// once committed, be opened as the part of a later "x" of a transfer whose
// ID starts with those digits: appended to, truncated on a restart and
// renamed away. Names shaped like parts are refused; others are not.
func TestPartLikeNamesRefused(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dl")
	d := newDownloads(t, dir)
	id, err := domain.ParseTransferID("0123abcd" + strings.Repeat("0", 24))
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"x.0123abcd.part", "x.0123ABCD.PART", "sub/x.0123abcd.part", "d.0123abcd.part/y", ".deadbeef.part"} {
		if _, err := d.OpenPart(domain.NewTransferID(), rel); !errors.Is(err, domain.ErrUnsafePath) {
			t.Errorf("OpenPart(%q) = %v, want ErrUnsafePath", rel, err)
		}
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Fatalf("refused names left %v", got)
	}
	for _, rel := range []string{"notes.part", "x.0123abc.part", "x.0123abcg.part", "x0123abcd.part", "x.0123abcd.part.txt"} {
		if final := receive(t, d, rel, []byte("ok")); final != rel {
			t.Errorf("%q committed as %q", rel, final)
		}
	}
	// The part of "x" for id never meets a committed file.
	p, err := d.OpenPart(id, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if n, err := p.Size(); err != nil || n != 0 {
		t.Fatalf("the part of a new transfer holds %d bytes (%v), want 0", n, err)
	}
}
