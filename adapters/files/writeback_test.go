package files_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/chatx/chatx/adapters/files"
	"github.com/chatx/chatx/domain"
)

type wbRange struct{ off, n int64 }

// TestWriteBehind checks which ranges a part hands to write-back as it
// grows (whole chunks of what was written since the last one, restarting at
// a truncation and at a resumed part's end), that each is settled (waited
// for and dropped from the cache) once the next one started, and that the
// file committed after it holds exactly the bytes written, also when
// write-back fails.
func TestWriteBehind(t *testing.T) {
	const chunk = files.WritebackChunk
	tests := []struct {
		name   string
		prefix int64 // bytes in the part before OpenPart (a resume)
		// writes are the sizes written in turn; a negative size truncates
		// to -size instead.
		writes []int64
		fail   bool
		want   []wbRange // started
		settle []wbRange // settled
	}{
		{name: "below one chunk", writes: []int64{chunk / 2, chunk/2 - 1}},
		{name: "exact chunks", writes: []int64{chunk, chunk, chunk},
			want: []wbRange{{0, chunk}, {chunk, chunk}, {2 * chunk, chunk}}, settle: []wbRange{{0, chunk}, {chunk, chunk}}},
		{name: "small writes add up", writes: []int64{chunk / 3, chunk / 3, chunk / 3, chunk / 3, 1 << 20},
			want: []wbRange{{0, chunk / 3 * 4}}},
		{name: "one big write", writes: []int64{3*chunk + 5}, want: []wbRange{{0, 3*chunk + 5}}},
		{name: "truncate restarts", writes: []int64{chunk + 1, -100, chunk, chunk},
			want: []wbRange{{0, chunk + 1}, {100, chunk}, {100 + chunk, chunk}}, settle: []wbRange{{100, chunk}}},
		{name: "resumed part starts at its end", prefix: 1000, writes: []int64{chunk - 1000, 1000},
			want: []wbRange{{1000, chunk}}},
		{name: "failure switches it off", fail: true, writes: []int64{chunk, chunk, chunk},
			want: []wbRange{{0, chunk}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d, cleanup, err := files.NewDownloads(files.DownloadDir(dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			id := domain.NewTransferID()
			var want []byte
			if tt.prefix > 0 {
				p, err := d.OpenPart(id, "f.bin")
				if err != nil {
					t.Fatal(err)
				}
				want = randomBytes(tt.prefix, 1)
				if _, err := p.Write(want); err != nil {
					t.Fatal(err)
				}
				p.Close()
			}
			p, err := d.OpenPart(id, "f.bin")
			if err != nil {
				t.Fatal(err)
			}
			var got, settled []wbRange
			files.RecordWriteback(p, tt.fail,
				func(off, n int64) { got = append(got, wbRange{off, n}) },
				func(off, n int64) { settled = append(settled, wbRange{off, n}) })
			for i, w := range tt.writes {
				if w < 0 {
					if err := p.Truncate(-w); err != nil {
						t.Fatal(err)
					}
					want = want[:-w]
					continue
				}
				b := randomBytes(w, uint64(i+2))
				if n, err := p.Write(b); err != nil || n != len(b) {
					t.Fatalf("write %d bytes: %d, %v", len(b), n, err)
				}
				want = append(want, b...)
			}
			if runtime.GOOS != "linux" && !tt.fail {
				// Elsewhere the first attempt fails and switches it off.
				tt.want, tt.settle = tt.want[:min(len(tt.want), 1)], nil
			}
			if !equalRanges(got, tt.want) {
				t.Errorf("write-back started for %v, want %v", got, tt.want)
			}
			if !equalRanges(settled, tt.settle) {
				t.Errorf("write-back settled for %v, want %v", settled, tt.settle)
			}
			name, err := p.Commit()
			if err != nil {
				t.Fatalf("commit: %v", err)
			}
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, want) {
				t.Fatalf("committed file has %d bytes, not the %d written (or differs)", len(data), len(want))
			}
		})
	}
}

func randomBytes(n int64, seed uint64) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(n)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

func equalRanges(a, b []wbRange) bool {
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
