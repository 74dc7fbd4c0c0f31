package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/domain"
)

func fingerprintLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "fingerprint:") {
			return l
		}
	}
	return ""
}

func TestRunDispatch(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"version"}, 0, "chatx " + version},
		{[]string{"help"}, 0, "chatx registry"},
		{[]string{"nonsense"}, 2, `unknown command "nonsense"`},
		{[]string{"registry", "-help"}, 0, "--listen"},
		{[]string{"jsonrpc", "-help"}, 0, "--auto-accept"},
		{[]string{"id", "--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"registry", "--tls-cert", "x"}, 2, "go together"},
		{[]string{"registry", "-help"}, 0, "--relay-listen"},
		{[]string{"registry", "--relay-rate", "fast"}, 2, "want bits per second"},
		{[]string{"registry", "--relay-ports", "9-3"}, 2, "want MIN-MAX"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(tt.args, strings.NewReader(""), &out, &errOut)
		if code != tt.code || !strings.Contains(out.String()+errOut.String(), tt.contains) {
			t.Errorf("run(%q) = %d, output %q; want %d containing %q", tt.args, code, out.String()+errOut.String(), tt.code, tt.contains)
		}
	}
}

func TestIDMakesAndKeepsTheIdentity(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "profile") // made by chatx, owner-only
	var out, errOut bytes.Buffer
	if code := run([]string{"id", "--profile", profile}, nil, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "give --name") {
		t.Fatalf("id on an empty profile: %d %q", code, errOut.String())
	}
	out.Reset()
	if code := run([]string{"id", "--profile", profile, "--name", "ALICE"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("id --name: %d %s", code, errOut.String())
	}
	first := out.String()
	if !strings.Contains(first, "name:        alice") || !strings.Contains(first, "fingerprint:") {
		t.Fatalf("id output: %q", first)
	}
	out.Reset()
	if code := run([]string{"id", "--profile", profile}, nil, &out, &errOut); code != 0 || out.String() != first {
		t.Fatalf("second id: %d %q, want %q", code, out.String(), first)
	}
	// Never signed up: the name is only a wish, --name changes it (same key).
	out.Reset()
	if code := run([]string{"id", "--profile", profile, "--name", "bob"}, nil, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "name:        bob") || fingerprintLine(out.String()) != fingerprintLine(first) {
		t.Fatalf("id --name bob on a never-bound profile: %d %q %q; want renamed, same key", code, out.String(), errOut.String())
	}
	// Once a registry bound the name, it is the profile's for good.
	if err := storage.MarkBound(storage.ProfileDir(profile), domain.MustUsername("bob")); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run([]string{"id", "--profile", profile, "--name", "carol"}, nil, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "belongs to") {
		t.Fatalf("id with another name on a bound profile: %d %q", code, errOut.String())
	}
	info, err := os.Stat(profile)
	if err != nil || info.Mode().Perm()&0o077 != 0 {
		t.Fatalf("profile mode: %v %v", info.Mode(), err)
	}
}

// TestIDLocksTheProfileOnlyToWrite: while a client holds the profile, `chatx
// id` still prints the identity, but refuses to create or rename it.
func TestIDLocksTheProfileOnlyToWrite(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "profile")
	var out, errOut bytes.Buffer
	if code := run([]string{"id", "--profile", profile, "--name", "alice"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("id --name: %d %s", code, errOut.String())
	}
	unlock, err := storage.LockProfile(storage.ProfileDir(profile))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	out.Reset()
	if code := run([]string{"id", "--profile", profile}, nil, &out, &errOut); code != 0 || !strings.Contains(out.String(), "name:        alice") {
		t.Fatalf("id beside a running client: %d %q %q", code, out.String(), errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"id", "--profile", profile, "--name", "bob"}, nil, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "in use") {
		t.Fatalf("id --name beside a running client: %d %q; want refused, profile in use", code, errOut.String())
	}
	out.Reset()
	if code := run([]string{"id", "--profile", profile}, nil, &out, &errOut); code != 0 || !strings.Contains(out.String(), "name:        alice") {
		t.Fatalf("the refused rename changed the identity: %q", out.String())
	}
}

func TestPassphraseFileChecks(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		file string
		want string
		err  string
	}{
		{write("ok", "correct horse\n", 0o600), "correct horse", ""},
		{write("open", "secret", 0o644), "", "readable by others"},
		{write("empty", "\n", 0o600), "", "empty"},
		{write("huge", strings.Repeat("x", maxPassphraseBytes+1), 0o600), "", "longer than"},
		{filepath.Join(dir, "missing"), "", "no such file"},
	}
	for _, tt := range tests {
		f := clientFlags{passphraseFile: tt.file}
		got, err := f.passphrase()
		if got != tt.want || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: %q, %v; want %q, error containing %q", filepath.Base(tt.file), got, err, tt.want, tt.err)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"", 0, true}, {"1024", 1024, true}, {"500MiB", 500 << 20, true}, {"2GB", 2e9, true},
		{"1.5 GiB", 3 << 29, true}, {"10kb", 10000, true}, {"-1", 0, false}, {"lots", 0, false}, {"1e30TB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestOneShotCommandsListOnlyTheirFlags(t *testing.T) {
	tests := []struct {
		cmd        string
		has, lacks []string
	}{
		{"send", []string{"-timeout", "-profile", "-registry", "-name", "Exit status"}, []string{"-downloads", "-max-incoming", "-yes", "-no-wait"}},
		{"receive", []string{"-from", "-yes", "-to", "-keep", "-max-incoming", "-profile"}, []string{"-downloads", "-no-wait"}},
		{"msg", []string{"-no-wait", "-timeout", "-profile"}, []string{"-downloads", "-yes", "-max-incoming"}},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if code := run([]string{tt.cmd, "-help"}, strings.NewReader(""), &out, &errOut); code != 0 {
			t.Fatalf("%s -help: exit %d", tt.cmd, code)
		}
		help := errOut.String()
		for _, f := range tt.has {
			if !strings.Contains(help, f) {
				t.Errorf("%s -help lacks %s:\n%s", tt.cmd, f, help)
			}
		}
		for _, f := range tt.lacks {
			if strings.Contains(help, "  "+f+" ") || strings.Contains(help, "  "+f+"\n") {
				t.Errorf("%s -help lists %s, not one of its flags", tt.cmd, f)
			}
		}
	}
	for _, args := range [][]string{{"send", "bob"}, {"msg", "bob"}, {"receive", "extra"}, {"send", "Not A Name!", "x"}} {
		var out, errOut bytes.Buffer
		if code := run(args, strings.NewReader(""), &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage); %s", args, code, errOut.String())
		}
	}
}
