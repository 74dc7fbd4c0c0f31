package storage_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/domain"
)

const crashChildEnv = "CHATX_STORAGE_CRASH_CHILD"

// TestAcknowledgedWritesSurviveKill runs a writer in a child process, kills
// it with SIGKILL while 64 goroutines are saving, and checks that every
// write the child had seen acknowledged is in the database afterwards, and
// that the database and its search index are intact.
func TestAcknowledgedWritesSurviveKill(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcknowledgedWritesSurviveKill$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := make(map[string]bool)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && len(acked) < 3000 {
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked[id] = true
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // acknowledgements written before the kill landed
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked[id] = true
		}
	}
	_ = cmd.Wait()
	if len(acked) < 3000 {
		t.Fatalf("the child acknowledged only %d writes before it stopped", len(acked))
	}

	ctx := ctxFor(t)
	s := mustOpen(t, dir)
	var stored []domain.Message
	for _, peer := range []domain.Username{bob, carol} {
		h, err := s.History(ctx, peer, time.Time{}, storage.MaxHistory)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, h...)
	}
	have := make(map[string]bool, len(stored))
	for _, m := range stored {
		have[m.ID().String()] = true
	}
	for id := range acked {
		if !have[id] {
			t.Fatalf("write %s was acknowledged before the kill but is not stored", id)
		}
	}
	found, err := s.Search(ctx, "crash", storage.MaxHistory)
	if err != nil || len(found) != len(stored) {
		t.Fatalf("search finds %d of %d stored messages (%v)", len(found), len(stored), err)
	}
	mustClose(t, s)
	t.Logf("%d writes acknowledged before SIGKILL, %d stored", len(acked), len(stored))

	db, err := sql.Open("sqlite", filepath.Join(dir, storage.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q %v", check, err)
	}
	if _, err := db.Exec("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')"); err != nil {
		t.Fatalf("search index integrity check: %v", err)
	}
}

// crashChild saves messages from 64 goroutines and prints the ID of each
// acknowledged one until it is killed (or a minute passes).
func crashChild(dir string) {
	s, _, err := storage.Open(storage.ProfileDir(dir), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf("crash test %d.%d", g, i)
				var m domain.Message
				var err error
				if i%2 == 0 {
					m, err = domain.NewOutgoingMessage(alice, bob, body, time.Now())
					if err == nil {
						err = s.SaveOutgoing(ctx, m)
					}
				} else {
					m, err = domain.NewIncomingMessage(domain.NewMessageID(), carol, alice, time.Now(), body)
					if err == nil {
						_, err = s.SaveIncoming(ctx, m)
					}
				}
				if err != nil {
					return
				}
				mu.Lock()
				_, err = fmt.Fprintf(os.Stdout, "ack %s\n", m.ID())
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}
