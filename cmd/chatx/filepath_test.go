package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
)

func TestFilePathFlag(t *testing.T) {
	tests := []struct {
		args []string
		want domain.FilePathMode
		err  string
	}{
		{nil, domain.FilePathAuto, ""},
		{[]string{"-file-path", "auto"}, domain.FilePathAuto, ""},
		{[]string{"-file-path", "udp"}, domain.FilePathOnlyUDP, ""},
		{[]string{"--file-path=tcp"}, domain.FilePathTryTCP, ""},
		{[]string{"-file-path", "quic"}, "", "--file-path"},
		{[]string{"-file-path", ""}, domain.FilePathAuto, ""},
	}
	for _, tt := range tests {
		f, err := resolveNetworkFlags(t, tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v: resolve = %v, want an error about %s", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: resolve: %v", tt.args, err)
		}
		if f.filePathMode != tt.want {
			t.Errorf("%v: mode %q, want %q", tt.args, f.filePathMode, tt.want)
		}
		if got := clientConfig(f, app.Options{}).Options.FilePath; got != tt.want {
			t.Errorf("%v: the client's option is %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestFileStripesFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want int
		ok   bool
	}{
		{nil, 0, true},
		{[]string{"-file-stripes", "1"}, 1, true},
		{[]string{"--file-stripes=4"}, 4, true},
		{[]string{"-file-stripes", "5"}, 0, false},
		{[]string{"-file-stripes", "-1"}, 0, false},
	} {
		f, err := resolveNetworkFlags(t, tt.args)
		if !tt.ok {
			if err == nil || !strings.Contains(err.Error(), "--file-stripes") {
				t.Errorf("%v: resolve = %v, want an error about --file-stripes", tt.args, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: resolve: %v", tt.args, err)
		}
		if got := clientConfig(f, app.Options{}).Files.Stripes; got != tt.want {
			t.Errorf("%v: udp.Config.Stripes %d, want %d", tt.args, got, tt.want)
		}
	}
}

// resolveNetworkFlags parses args as a client's network flags and resolves
// them (profile and downloads in temporary folders).
func resolveNetworkFlags(t *testing.T, args []string) (*clientFlags, error) {
	t.Helper()
	var f clientFlags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.registerNetwork(fs)
	f.profile, f.downloads = t.TempDir(), t.TempDir()
	if err := fs.Parse(args); err != nil {
		t.Fatalf("%v: parse: %v", args, err)
	}
	return &f, f.resolve()
}
