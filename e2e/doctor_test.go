package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chatx doctor signs up, tells the candidates and how it reached a running
// peer, and fails with the reason for a name nobody has.
func TestDoctorReportsCandidatesAndPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "127.0.0.1:0")
	bobDirs := newDirs(t, "bob")
	bob := startClient(t, "bob", reg.url, bobDirs)
	var who struct{ Name string }
	bob.call("whoami", map[string]any{}, &who)

	profile := filepath.Join(t.TempDir(), "carol")
	doctor := func(names ...string) (string, error) {
		args := append([]string{"doctor", "--name", "carol", "--profile", profile,
			"--registry", reg.url, "--listen-tcp", "127.0.0.1:0", "--listen-udp", "127.0.0.1:0", "--wait", "10s"}, names...)
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, chatxBin, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	out, err := doctor("bob")
	if err != nil {
		t.Fatalf("doctor bob: %v\n%s", err, out)
	}
	for _, want := range []string{"registry", "connected", "candidates  host 127.0.0.1:", "bob         reached: lan tcp 127.0.0.1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	out, err = doctor("bob", "nobody")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("doctor with an unknown peer: err %v, want exit 1\n%s", err, out)
	}
	if !strings.Contains(out, "nobody      cannot reach:") || !strings.Contains(out, "unknown") {
		t.Errorf("doctor does not say why nobody is unreachable:\n%s", out)
	}
	// bob's running client holds his profile: a doctor on it refuses.
	var busy bytes.Buffer
	cmd := exec.CommandContext(ctx, chatxBin, "doctor", "--profile", bobDirs.profile, "--registry", reg.url, "--wait", "2s")
	cmd.Stdout, cmd.Stderr = &busy, &busy
	if err := cmd.Run(); err == nil || !strings.Contains(busy.String(), "in use") {
		t.Errorf("doctor on a profile in use: err %v\n%s", err, busy.String())
	}
}
