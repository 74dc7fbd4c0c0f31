package storage_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var (
	alice = domain.MustUsername("alice")
	bob   = domain.MustUsername("bob")
	carol = domain.MustUsername("carol")
	t0    = time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)
)

func ctxFor(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func out(t testing.TB, to domain.Username, body string, at time.Time) domain.Message {
	t.Helper()
	m, err := domain.NewOutgoingMessage(alice, to, body, at)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func in(t testing.TB, from domain.Username, body string, at time.Time) domain.Message {
	t.Helper()
	m, err := domain.NewIncomingMessage(domain.NewMessageID(), from, alice, at, body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustOpen(t *testing.T, dir string) *storage.Store {
	t.Helper()
	s, _, err := storage.Open(storage.ProfileDir(dir), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustClose(t *testing.T, s *storage.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func bodiesOf(ms []domain.Message) []string {
	b := make([]string, len(ms))
	for i, m := range ms {
		b[i] = m.Body()
	}
	return b
}

func TestEverythingSurvivesReopen(t *testing.T) {
	t.Parallel()
	ctx, dir := ctxFor(t), t.TempDir()
	s := mustOpen(t, dir)

	sent := out(t, bob, "to bob, delivered", t0)
	queued := out(t, bob, "to bob, queued", t0.Add(time.Second))
	got := in(t, bob, "from bob", t0.Add(2*time.Second))
	for _, m := range []domain.Message{sent, queued} {
		if err := s.SaveOutgoing(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if isNew, err := s.SaveIncoming(ctx, got); err != nil || !isNew {
		t.Fatalf("SaveIncoming: %v %v", isNew, err)
	}
	if _, err := s.SetState(ctx, sent.ID(), domain.MessageDelivered); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	bobID, _ := domain.NewLocalIdentity(bob, priv)
	if err := storage.NewContacts(s).Pin(ctx, bobID.Identity, t0); err != nil {
		t.Fatal(err)
	}
	if err := storage.NewContacts(s).SetVerified(ctx, bob, true); err != nil {
		t.Fatal(err)
	}
	man, _ := domain.NewManifest("f.bin", []domain.FileEntry{{Path: "f.bin", Size: 10, Hash: sha256.Sum256([]byte("x"))}})
	tr, _ := domain.NewTransfer(domain.NewTransferID(), bob, domain.Outgoing, man, t0)
	tr = tr.WithSource("/tmp/f.bin")
	if err := storage.NewTransfers(s).Save(ctx, tr); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)

	s = mustOpen(t, dir)
	defer mustClose(t, s)
	h, err := s.History(ctx, bob, time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"to bob, delivered", "to bob, queued", "from bob"}; !slices.Equal(bodiesOf(h), want) {
		t.Fatalf("history after reopen %q, want %q", bodiesOf(h), want)
	}
	if h[0].State() != domain.MessageDelivered || h[1].State() != domain.MessageQueued || h[2].Direction() != domain.Incoming {
		t.Fatalf("states after reopen: %s %s %s", h[0].State(), h[1].State(), h[2].Direction())
	}
	if !h[0].SentAt().Equal(t0) || h[0].SentAt().Nanosecond() != t0.Nanosecond() {
		t.Fatalf("SentAt %v, want %v to the nanosecond", h[0].SentAt(), t0)
	}
	if ob, _ := s.Outbox(ctx, bob); len(ob) != 1 || ob[0].ID() != queued.ID() {
		t.Fatalf("outbox after reopen: %q", bodiesOf(ob))
	}
	if isNew, err := s.SaveIncoming(ctx, got); err != nil || isNew {
		t.Fatalf("a replay after reopen was stored again: %v %v", isNew, err)
	}
	c, err := storage.NewContacts(s).Get(ctx, bob)
	if err != nil || !c.Verified || !c.Identity.SameKey(bobID.PublicKey()) {
		t.Fatalf("contact after reopen: %+v %v", c, err)
	}
	gotTr, err := storage.NewTransfers(s).Get(ctx, tr.ID())
	if err != nil || gotTr.Source() != "/tmp/f.bin" || gotTr.Manifest().Files[0] != man.Files[0] {
		t.Fatalf("transfer after reopen: %+v %v", gotTr.Snapshot(), err)
	}
}

// TestConcurrentSaveOutgoing saves 10,000 messages from as many goroutines
// at once: every call must be on disk when it returns, so after a reopen all
// of them are there, and the writer must have shared commits between them.
func TestConcurrentSaveOutgoing(t *testing.T) {
	t.Parallel()
	const n = 10_000
	ctx, dir := ctxFor(t), t.TempDir()
	s := mustOpen(t, dir)
	msgs := make([]domain.Message, n)
	for i := range msgs {
		msgs[i] = out(t, bob, fmt.Sprintf("message %05d", i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, m := range msgs {
		wg.Go(func() {
			if err := s.SaveOutgoing(ctx, m); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("SaveOutgoing: %v", err)
	}
	st := s.Stats()
	t.Logf("%d writes in %d commits (%.0f per commit)", st.Writes, st.Commits, float64(st.Writes)/float64(st.Commits))
	if st.Writes != n || st.Commits >= st.Writes {
		t.Fatalf("writer stats %+v: want %d writes sharing commits", st, n)
	}
	mustClose(t, s)

	s = mustOpen(t, dir)
	defer mustClose(t, s)
	h, err := s.History(ctx, bob, time.Time{}, n)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := s.Outbox(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != n || len(ob) != n {
		t.Fatalf("after reopen: %d in history, %d in outbox, want %d", len(h), len(ob), n)
	}
	for i := range msgs {
		if h[i].ID() != msgs[i].ID() || ob[i].ID() != msgs[i].ID() {
			t.Fatalf("message %d out of order after reopen: %q", i, h[i].Body())
		}
	}
}

func TestHistoryOrdersSameTimeByArrival(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	s := openStore(t, t.TempDir())
	for _, b := range []string{"first", "second", "third"} {
		if err := s.SaveOutgoing(ctx, out(t, bob, b, t0)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.History(ctx, bob, time.Time{}, 10)
	if err != nil || !slices.Equal(bodiesOf(h), []string{"first", "second", "third"}) {
		t.Fatalf("history %q (%v)", bodiesOf(h), err)
	}
	if h, _ := s.History(ctx, bob, time.Time{}, 0); len(h) != 0 {
		t.Fatalf("limit 0 returned %d messages", len(h))
	}
}

func TestSaveOutgoingTwiceIsRefused(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	s := openStore(t, t.TempDir())
	m := out(t, bob, "once", t0)
	if err := s.SaveOutgoing(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveOutgoing(ctx, m); err == nil {
		t.Fatal("a second SaveOutgoing of the same ID succeeded")
	}
	// The refused write did not disturb the writer.
	if err := s.SaveOutgoing(ctx, out(t, bob, "next", t0)); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.History(ctx, bob, time.Time{}, 10); len(h) != 2 {
		t.Fatalf("history holds %d messages, want 2", len(h))
	}
	if err := s.SaveOutgoing(ctx, in(t, bob, "wrong way", t0)); err == nil {
		t.Fatal("SaveOutgoing of an incoming message succeeded")
	}
	if _, err := s.SaveIncoming(ctx, out(t, bob, "wrong way", t0)); err == nil {
		t.Fatal("SaveIncoming of an outgoing message succeeded")
	}
}

func TestSearchWithOddInput(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	s := openStore(t, t.TempDir())
	bodies := []string{
		`she said "hello" twice`,
		`NEAR the end, AND OR NOT`,
		`Crème brûlée recipe`,
		`привет мир`,
		`col:value and a*b ^start`,
		`emoji 🎉 party`,
		`日本語のテキスト`,
	}
	for i, b := range bodies {
		if err := s.SaveOutgoing(ctx, out(t, bob, b, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		query string
		want  []string
	}{
		{`"hello"`, []string{bodies[0]}},
		{`"hello`, []string{bodies[0]}},
		{`he"llo`, nil},
		{`"`, nil},
		{`""`, nil},
		{`*`, nil},
		{`* hello`, []string{bodies[0]}},
		{`NEAR`, []string{bodies[1]}},
		{`NEAR(end AND)`, []string{bodies[1]}},
		{`near end`, []string{bodies[1]}},
		{`end OR hello`, nil}, // every word: no body has end, or and hello
		{`NOT`, []string{bodies[1]}},
		{`-end`, []string{bodies[1]}},
		{`col:value`, []string{bodies[4]}},
		{`a*b`, []string{bodies[4]}},
		{`^start`, []string{bodies[4]}},
		{`(`, nil},
		{`')`, nil},
		{`creme brulee`, []string{bodies[2]}},
		{`CRÈME`, []string{bodies[2]}},
		{`ПРИВЕТ`, []string{bodies[3]}},
		{`🎉`, nil},
		{`party 🎉`, []string{bodies[5]}},
		{`日本語`, []string{bodies[6]}},
		{"nul\x00byte", nil},
		{"", nil},
		{"   \t ", nil},
	}
	for _, tc := range tests {
		got, err := s.Search(ctx, tc.query, 10)
		if err != nil {
			t.Errorf("Search(%q): %v", tc.query, err)
			continue
		}
		if !slices.Equal(bodiesOf(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("Search(%q) = %q, want %q", tc.query, bodiesOf(got), tc.want)
		}
	}
	if _, err := s.Search(ctx, strings.Repeat("a", storage.MaxSearchQuery+1), 10); !errors.Is(err, domain.ErrTooLarge) {
		t.Errorf("over-long query: %v, want ErrTooLarge", err)
	}
	many := strings.Repeat("word ", 1000)[:storage.MaxSearchQuery]
	if _, err := s.Search(ctx, many, 10); err != nil {
		t.Errorf("query of many words: %v", err)
	}
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, storage.DatabaseFile)
	versions := func() []int {
		t.Helper()
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query("SELECT version FROM schema_migrations ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var vs []int
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			vs = append(vs, v)
		}
		var uv int
		if err := db.QueryRow("PRAGMA user_version").Scan(&uv); err != nil {
			t.Fatal(err)
		}
		if uv != storage.SchemaVersion {
			t.Fatalf("user_version %d, want %d", uv, storage.SchemaVersion)
		}
		return vs
	}
	var want []int
	for v := 1; v <= storage.SchemaVersion; v++ {
		want = append(want, v)
	}

	ctx := ctxFor(t)
	s := mustOpen(t, dir)
	if err := s.SaveOutgoing(ctx, out(t, bob, "kept", t0)); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	if got := versions(); !slices.Equal(got, want) {
		t.Fatalf("after first open: versions %v, want %v", got, want)
	}
	for range 2 {
		s = mustOpen(t, dir)
		mustClose(t, s)
	}
	if got := versions(); !slices.Equal(got, want) {
		t.Fatalf("after reopening: versions %v, want %v", got, want)
	}
	s = mustOpen(t, dir)
	if h, _ := s.History(ctx, bob, time.Time{}, 10); len(h) != 1 {
		t.Fatalf("reopening lost data: %d messages", len(h))
	}
	mustClose(t, s)

	// A database from a newer program is refused, not damaged.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', 0)", storage.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, _, err := storage.Open(storage.ProfileDir(dir), nil); !errors.Is(err, storage.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestFilesArePrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "profile")
	s := mustOpen(t, dir)
	if err := s.SaveOutgoing(ctxFor(t), out(t, bob, "x", t0)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{storage.DatabaseFile, storage.DatabaseFile + "-wal", storage.DatabaseFile + "-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", name, perm)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("profile directory mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	mustClose(t, s)

	if err := os.Chmod(filepath.Join(dir, storage.DatabaseFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := storage.Open(storage.ProfileDir(dir), nil); !errors.Is(err, storage.ErrInsecurePermissions) {
		t.Fatalf("Open of a world-readable database: %v, want ErrInsecurePermissions", err)
	}
}

func TestClosedStoreRefusesCalls(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	s := mustOpen(t, t.TempDir())
	mustClose(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.SaveOutgoing(ctx, out(t, bob, "late", t0)); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("SaveOutgoing after Close: %v, want ErrClosed", err)
	}
	if _, err := s.SetState(ctx, domain.NewMessageID(), domain.MessageSent); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("SetState after Close: %v, want ErrClosed", err)
	}
}

// TestCloseDrainsQueuedWrites closes the store while writers are still
// calling: every call either succeeded and is on disk, or got ErrClosed.
func TestCloseDrainsQueuedWrites(t *testing.T) {
	t.Parallel()
	ctx, dir := ctxFor(t), t.TempDir()
	s := mustOpen(t, dir)
	const n = 2000
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok []domain.MessageID
	started := make(chan struct{}, n)
	for i := range n {
		wg.Go(func() {
			m := out(t, carol, fmt.Sprint(i), t0)
			started <- struct{}{}
			err := s.SaveOutgoing(ctx, m)
			switch {
			case err == nil:
				mu.Lock()
				ok = append(ok, m.ID())
				mu.Unlock()
			case !errors.Is(err, storage.ErrClosed):
				t.Errorf("SaveOutgoing: %v", err)
			}
		})
	}
	for range n / 2 {
		<-started
	}
	mustClose(t, s)
	wg.Wait()

	s = mustOpen(t, dir)
	defer mustClose(t, s)
	h, err := s.History(ctx, carol, time.Time{}, n)
	if err != nil {
		t.Fatal(err)
	}
	stored := make(map[domain.MessageID]bool, len(h))
	for _, m := range h {
		stored[m.ID()] = true
	}
	for _, id := range ok {
		if !stored[id] {
			t.Fatalf("message %s was acknowledged but is not stored", id)
		}
	}
	t.Logf("%d of %d calls succeeded before Close, %d stored", len(ok), n, len(h))
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.SaveOutgoing(ctx, out(t, bob, "x", t0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("SaveOutgoing with a cancelled context: %v", err)
	}
}

func TestSetStateMoves(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	s := openStore(t, t.TempDir())
	tests := []struct {
		path    []domain.MessageState // moves made first, all allowed
		next    domain.MessageState
		allowed bool
	}{
		{nil, domain.MessageQueued, true}, // same state: a no-op
		{nil, domain.MessageDelivered, true},
		{[]domain.MessageState{domain.MessageDelivered}, domain.MessageSent, false},
		{[]domain.MessageState{domain.MessageDelivered}, domain.MessageQueued, false},
		{[]domain.MessageState{domain.MessageDelivered}, domain.MessageDelivered, true},
		{[]domain.MessageState{domain.MessageSent}, domain.MessageQueued, true},
		{[]domain.MessageState{domain.MessageFailed}, domain.MessageQueued, true},
		{[]domain.MessageState{domain.MessageFailed}, domain.MessageSent, false},
		{[]domain.MessageState{domain.MessageRead}, domain.MessageFailed, false},
	}
	for i, tc := range tests {
		m := out(t, bob, fmt.Sprint("case ", i), t0)
		if err := s.SaveOutgoing(ctx, m); err != nil {
			t.Fatal(err)
		}
		want := domain.MessageQueued
		for _, st := range tc.path {
			if _, err := s.SetState(ctx, m.ID(), st); err != nil {
				t.Fatalf("case %d: SetState(%s): %v", i, st, err)
			}
			want = st
		}
		got, err := s.SetState(ctx, m.ID(), tc.next)
		if tc.allowed {
			if err != nil || got.State() != tc.next || got.ID() != m.ID() {
				t.Fatalf("case %d: %s → %s: %v %v", i, want, tc.next, got.State(), err)
			}
			want = tc.next
		} else if !errors.Is(err, domain.ErrInvalidTransition) {
			t.Fatalf("case %d: %s → %s: %v, want ErrInvalidTransition", i, want, tc.next, err)
		}
		h, err := s.History(ctx, bob, time.Time{}, 1)
		if err != nil || len(h) != 1 || h[0].ID() != m.ID() || h[0].State() != want {
			t.Fatalf("case %d: stored %v (%v), want %s", i, h, err, want)
		}
	}
	if _, err := s.SetState(ctx, in(t, bob, "theirs", t0).ID(), domain.MessageRead); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("SetState of an unknown ID: %v", err)
	}
}

func TestSetStateRefusesIncoming(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	s := openStore(t, t.TempDir())
	m := in(t, bob, "theirs", t0)
	if _, err := s.SaveIncoming(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetState(ctx, m.ID(), domain.MessageRead); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("SetState of an incoming message: %v, want ErrNotFound (only ours move)", err)
	}
}

func TestLargeManifestRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	ts := storage.NewTransfers(openStore(t, t.TempDir()))
	files := make([]domain.FileEntry, domain.MaxTransferFiles)
	for i := range files {
		files[i] = domain.FileEntry{Path: fmt.Sprintf("dir/f%05d.txt", i), Size: int64(i), Hash: sha256.Sum256([]byte(fmt.Sprint(i)))}
	}
	man, err := domain.NewManifest("dir", files)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := domain.NewTransfer(domain.NewTransferID(), carol, domain.Incoming, man, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Save(ctx, tr); err != nil {
		t.Fatal(err)
	}
	got, err := ts.Get(ctx, tr.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Manifest().Files, files) || got.Total() != tr.Total() || !got.Manifest().IsFolder() {
		t.Fatal("manifest of 10,000 files changed in the store")
	}
}

// TestFailedSyncFailsLaterWrites makes the WAL fsync fail once: that write
// and every later one report the failure (the kernel may have dropped the
// data), and reopening the store works.
func TestFailedSyncFailsLaterWrites(t *testing.T) {
	t.Parallel()
	ctx, dir := ctxFor(t), t.TempDir()
	s := mustOpen(t, dir)
	if err := s.SaveOutgoing(ctx, out(t, bob, "before", t0)); err != nil {
		t.Fatal(err)
	}
	diskErr := errors.New("simulated EIO")
	calls := 0
	storage.SetSyncForTest(s, func(*os.File) error { calls++; return diskErr })
	if err := s.SaveOutgoing(ctx, out(t, bob, "during", t0)); !errors.Is(err, diskErr) {
		t.Fatalf("SaveOutgoing with a failing fsync: %v, want the fsync's error", err)
	}
	storage.SetSyncForTest(s, func(*os.File) error { calls++; return nil })
	if _, err := s.SetState(ctx, domain.NewMessageID(), domain.MessageSent); !errors.Is(err, diskErr) {
		t.Fatalf("a write after a failed fsync: %v, want the fsync's error", err)
	}
	if _, err := s.MarkStates(ctx, []ports.StateMark{{ID: domain.NewMessageID(), State: domain.MessageDelivered}}); !errors.Is(err, diskErr) {
		t.Fatalf("a lazy mark after a failed fsync: %v, want the fsync's error", err)
	}
	if calls != 1 {
		t.Fatalf("%d fsyncs after the failure, want none", calls-1)
	}
	mustClose(t, s)
	s = mustOpen(t, dir)
	defer mustClose(t, s)
	if err := s.SaveOutgoing(ctx, out(t, bob, "after reopen", t0)); err != nil {
		t.Fatalf("SaveOutgoing after reopening: %v", err)
	}
}

// Marks are committed without an fsync of their own, survive a reopen, and
// move the messages out of the outbox.
func TestMarksNeedNoFsyncAndSurviveReopen(t *testing.T) {
	t.Parallel()
	ctx, dir := ctxFor(t), t.TempDir()
	s := mustOpen(t, dir)
	var marks []ports.StateMark
	marked := map[string]bool{}
	for i := range 100 {
		m := out(t, bob, fmt.Sprint("m", i), t0.Add(time.Duration(i)*time.Second))
		if err := s.SaveOutgoing(ctx, m); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			marks = append(marks, ports.StateMark{ID: m.ID(), State: domain.MessageDelivered})
			marked[m.Body()] = true
		}
	}
	before := s.Stats().Syncs
	moved, err := s.MarkStates(ctx, marks)
	if err != nil || len(moved) != len(marks) {
		t.Fatalf("MarkStates moved %d of %d: %v", len(moved), len(marks), err)
	}
	if n := s.Stats().Syncs - before; n != 0 {
		t.Fatalf("a batch of marks cost %d fsyncs, want none", n)
	}
	mustClose(t, s)
	s = mustOpen(t, dir)
	defer mustClose(t, s)
	box, err := s.Outbox(ctx, bob)
	if err != nil || len(box) != 50 {
		t.Fatalf("outbox after reopen: %d messages (%v), want the 50 unmarked", len(box), err)
	}
	for _, m := range box {
		if marked[m.Body()] {
			t.Fatalf("marked message %q still in the outbox", m.Body())
		}
	}
}

// MarkStates reports exactly the marks that moved a message — when every
// mark of a batch moves one and when some do not (repeated, already there,
// a move the domain refuses, unknown) — and changes nothing else.
func TestMarkStatesReportsOnlyTheMovesMade(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	s := mustOpen(t, t.TempDir())
	defer mustClose(t, s)
	var ms []domain.Message
	for i := range 8 {
		m := out(t, bob, fmt.Sprint("m", i), t0.Add(time.Duration(i)*time.Second))
		if err := s.SaveOutgoing(ctx, m); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	mark := func(i int, st domain.MessageState) ports.StateMark { return ports.StateMark{ID: ms[i].ID(), State: st} }
	all := []ports.StateMark{mark(0, domain.MessageDelivered), mark(1, domain.MessageDelivered), mark(2, domain.MessageSent)}
	if moved, err := s.MarkStates(ctx, all); err != nil || !slices.Equal(moved, all) {
		t.Fatalf("every mark moving: moved %v (%v), want %v", moved, err, all)
	}
	some := []ports.StateMark{
		mark(0, domain.MessageDelivered),                                   // there already
		mark(3, domain.MessageDelivered),                                   // moves
		mark(4, domain.MessageDelivered), mark(4, domain.MessageDelivered), // moves, asked twice
		mark(1, domain.MessageSent),                                 // delivered → sent: refused
		mark(2, domain.MessageDelivered),                            // sent → delivered: moves
		{ID: domain.NewMessageID(), State: domain.MessageDelivered}, // not ours
	}
	moved, err := s.MarkStates(ctx, some)
	want := []ports.StateMark{some[1], some[2], some[3], some[5]}
	if err != nil || !slices.Equal(moved, want) {
		t.Fatalf("some marks moving: moved %v (%v), want %v", moved, err, want)
	}
	h, err := s.History(ctx, bob, time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	states := []domain.MessageState{domain.MessageDelivered, domain.MessageDelivered, domain.MessageDelivered,
		domain.MessageDelivered, domain.MessageDelivered, domain.MessageQueued, domain.MessageQueued, domain.MessageQueued}
	for i, m := range h {
		if m.State() != states[i] {
			t.Errorf("message %s is %s, want %s", m.Body(), m.State(), states[i])
		}
	}
}

// hangFirstSync makes the next fsync of s's log hang until release is
// called (once or more); flushing is closed when it starts.
func hangFirstSync(s *storage.Store) (flushing <-chan struct{}, release func()) {
	started, flush := make(chan struct{}), make(chan struct{})
	var first, once sync.Once
	storage.SetSyncForTest(s, func(f *os.File) error {
		first.Do(func() {
			close(started)
			<-flush
		})
		return f.Sync()
	})
	return started, func() { once.Do(func() { close(flush) }) }
}

// SaveOutgoingStaged calls committed before the fsync that makes the
// message durable, and the message is readable from then on.
func TestSaveOutgoingStagedCallsCommittedBeforeTheFsync(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	s := mustOpen(t, t.TempDir())
	defer mustClose(t, s)
	m := out(t, bob, "staged", t0)
	flushing, release := hangFirstSync(s)
	defer release()
	var seenInOutbox, calledBeforeFlush bool
	committed := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.SaveOutgoingStaged(ctx, m, func() {
			select {
			case <-flushing:
			default:
				calledBeforeFlush = true
			}
			close(committed)
		})
	}()
	<-committed
	box, err := s.Outbox(ctx, bob)
	seenInOutbox = err == nil && len(box) == 1 && box[0].ID() == m.ID()
	<-flushing
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !calledBeforeFlush || !seenInOutbox {
		t.Fatalf("committed before the fsync: %v; message in the outbox then: %v", calledBeforeFlush, seenInOutbox)
	}
	failed := out(t, bob, "staged twice", t0)
	if err := s.SaveOutgoing(ctx, failed); err != nil {
		t.Fatal(err)
	}
	called := false
	if err := s.SaveOutgoingStaged(ctx, failed, func() { called = true }); err == nil || called {
		t.Fatalf("a refused save: err %v, committed called %v", err, called)
	}
}

// Received messages stored at once (the writer puts them in one INSERT)
// are deduplicated as one by one: of the copies of a message, whichever
// comes first is new and the others are not, the same ID from two senders
// is two messages, and each is stored once.
func TestConcurrentSaveIncomingDeduplicates(t *testing.T) {
	t.Parallel()
	const n, copies = 2000, 3
	ctx, dir := ctxFor(t), t.TempDir()
	s := mustOpen(t, dir)
	var msgs []domain.Message
	for i := range n {
		m := in(t, bob, fmt.Sprintf("from bob %05d", i), t0.Add(time.Duration(i)*time.Millisecond))
		msgs = append(msgs, m)
		// carol picks the same ID: a message of her own.
		c, err := domain.NewIncomingMessage(m.ID(), carol, alice, m.SentAt(), fmt.Sprintf("from carol %05d", i))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, c)
	}
	news := make([]int, len(msgs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(msgs)*copies)
	for range copies {
		for i, m := range msgs {
			wg.Go(func() {
				isNew, err := s.SaveIncoming(ctx, m)
				if err != nil {
					errs <- err
					return
				}
				if isNew {
					mu.Lock()
					news[i]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("SaveIncoming: %v", err)
	}
	for i, k := range news {
		if k != 1 {
			t.Fatalf("message %q reported new %d times, want once", msgs[i].Body(), k)
		}
	}
	st := s.Stats()
	t.Logf("%d writes in %d commits, %d in multi-row statements", st.Writes, st.Commits, st.RowWrites)
	if st.RowWrites == 0 {
		t.Fatalf("writer stats %+v: no write shared a statement", st)
	}
	mustClose(t, s)
	s = mustOpen(t, dir)
	defer mustClose(t, s)
	for _, peer := range []domain.Username{bob, carol} {
		h, err := s.History(ctx, peer, time.Time{}, storage.MaxHistory)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != n {
			t.Fatalf("history with %s holds %d messages, want %d", peer, len(h), n)
		}
		for i, m := range h {
			if want := fmt.Sprintf("from %s %05d", peer, i); m.Body() != want {
				t.Fatalf("message %d with %s is %q, want %q", i, peer, m.Body(), want)
			}
		}
	}
}

// Messages saved at once in states other than a new one's (an outgoing
// message restored as sent, a received one as read) keep their state
// beside the new ones the writer stores together.
func TestConcurrentSavesKeepEveryState(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	s := mustOpen(t, t.TempDir())
	defer mustClose(t, s)
	const n = 512
	want := map[domain.MessageID]domain.MessageState{}
	var ms []domain.Message
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		m := out(t, bob, fmt.Sprint("out ", i), at)
		if i%7 == 0 {
			m = domain.RestoreMessage(m.ID(), alice, bob, at, m.Body(), domain.Outgoing, domain.MessageSent)
		}
		r := in(t, bob, fmt.Sprint("in ", i), at)
		if i%5 == 0 {
			r = domain.RestoreMessage(r.ID(), bob, alice, at, r.Body(), domain.Incoming, domain.MessageRead)
		}
		ms = append(ms, m, r)
		want[m.ID()], want[r.ID()] = m.State(), r.State()
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(ms))
	for _, m := range ms {
		wg.Go(func() {
			var err error
			if m.Direction() == domain.Outgoing {
				err = s.SaveOutgoing(ctx, m)
			} else {
				_, err = s.SaveIncoming(ctx, m)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	h, err := s.History(ctx, bob, time.Time{}, storage.MaxHistory)
	if err != nil || len(h) != len(ms) {
		t.Fatalf("history holds %d messages (%v), want %d", len(h), err, len(ms))
	}
	for _, m := range h {
		if m.State() != want[m.ID()] {
			t.Errorf("%q is %s, want %s", m.Body(), m.State(), want[m.ID()])
		}
	}
	if st := s.Stats(); st.RowWrites == 0 {
		t.Fatalf("writer stats %+v: no save shared a statement", st)
	}
}

// Of outgoing messages stored at once, one with an ID stored already fails
// alone: the writer stores its neighbours all the same.
func TestConcurrentSaveOutgoingRefusesOnlyTheRepeat(t *testing.T) {
	t.Parallel()
	const n = 3000
	ctx := ctxFor(t)
	s := openStore(t, t.TempDir())
	msgs := make([]domain.Message, n)
	for i := range msgs {
		msgs[i] = out(t, bob, fmt.Sprintf("message %05d", i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	// Every tenth one is stored first, then everything at once.
	for i := 0; i < n; i += 10 {
		if err := s.SaveOutgoing(ctx, msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	failed := make([]bool, n)
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Go(func() { failed[i] = s.SaveOutgoing(ctx, m) != nil })
	}
	wg.Wait()
	for i, f := range failed {
		if f != (i%10 == 0) {
			t.Fatalf("message %d: failed %v, want %v", i, f, i%10 == 0)
		}
	}
	h, err := s.History(ctx, bob, time.Time{}, storage.MaxHistory)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != n {
		t.Fatalf("history holds %d messages, want %d", len(h), n)
	}
	if st := s.Stats(); st.RowWrites == 0 {
		t.Logf("writer stats %+v: no write shared a statement (the refusals were not tried in one)", st)
	}
}

// TestTransferSaveSoon: SaveSoon costs no fsync of its own, and the next
// durable write carries it (both are there after a reopen).
func TestTransferSaveSoon(t *testing.T) {
	t.Parallel()
	ctx, dir := ctxFor(t), t.TempDir()
	s := mustOpen(t, dir)
	trs := storage.NewTransfers(s)
	man, _ := domain.NewManifest("f.bin", []domain.FileEntry{{Path: "f.bin", Size: 10}})
	tr, _ := domain.NewTransfer(domain.NewTransferID(), bob, domain.Outgoing, man, t0)
	if err := trs.Save(ctx, tr); err != nil {
		t.Fatal(err)
	}
	before := s.Stats().Syncs
	if err := tr.Accept(t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := trs.SaveSoon(ctx, tr); err != nil {
		t.Fatalf("SaveSoon: %v", err)
	}
	if got := s.Stats().Syncs; got != before {
		t.Fatalf("SaveSoon waited for %d fsyncs, want none", got-before)
	}
	other, _ := domain.NewTransfer(domain.NewTransferID(), bob, domain.Incoming, man, t0)
	if err := trs.Save(ctx, other); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s = mustOpen(t, dir)
	defer mustClose(t, s)
	got, err := storage.NewTransfers(s).Get(ctx, tr.ID())
	if err != nil || got.State() != domain.TransferAccepted {
		t.Fatalf("after reopen: %v %v, want accepted", got.State(), err)
	}
}
