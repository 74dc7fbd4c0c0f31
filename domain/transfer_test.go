package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
)

func oneFile(t *testing.T, size int64) domain.Manifest {
	t.Helper()
	m, err := domain.NewManifest("report.pdf", []domain.FileEntry{{Path: "report.pdf", Size: size}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTransferHappyPathWithResume(t *testing.T) {
	t.Parallel()
	tr, err := domain.NewTransfer(domain.NewTransferID(), bob, domain.Incoming, oneFile(t, 1000), now)
	if err != nil {
		t.Fatal(err)
	}
	clock := now
	tick := func(d time.Duration) time.Time { clock = clock.Add(d); return clock }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.Accept(tick(time.Second)))
	must(tr.Start(0, tick(time.Second)))
	must(tr.Progress(250, tick(time.Second)))
	if tr.Rate() != 250 {
		t.Fatalf("rate = %v, want 250 B/s", tr.Rate())
	}
	if tr.ETA() != 3*time.Second {
		t.Fatalf("ETA = %v, want 3s", tr.ETA())
	}
	must(tr.Interrupt(tick(time.Second)))
	if err := tr.Progress(300, tick(time.Second)); err == nil {
		t.Fatal("progress while interrupted")
	}
	must(tr.Resume(250, tick(time.Second)))
	if tr.Done() != 250 {
		t.Fatalf("done after resume = %d", tr.Done())
	}
	if err := tr.Progress(100, tick(time.Second)); err == nil {
		t.Fatal("progress went backwards")
	}
	must(tr.Progress(1000, tick(time.Second)))
	must(tr.Verify(tick(time.Second)))
	must(tr.Complete(tick(time.Second)))
	if tr.State() != domain.TransferCompleted || tr.Done() != 1000 || !tr.State().Terminal() {
		t.Fatalf("final: %v %d", tr.State(), tr.Done())
	}
	if err := tr.Cancel(now); !errors.Is(err, domain.ErrInvalidTransition) {
		t.Fatalf("cancel after completion: %v", err)
	}
}

func TestTransferTransitions(t *testing.T) {
	t.Parallel()
	all := []domain.TransferState{domain.TransferOffered, domain.TransferAccepted, domain.TransferDeclined,
		domain.TransferInProgress, domain.TransferInterrupted, domain.TransferVerifying,
		domain.TransferCompleted, domain.TransferCancelled, domain.TransferFailed}
	allowed := map[[2]domain.TransferState]bool{}
	for _, p := range [][2]domain.TransferState{
		{domain.TransferOffered, domain.TransferAccepted}, {domain.TransferOffered, domain.TransferDeclined},
		{domain.TransferOffered, domain.TransferCancelled}, {domain.TransferOffered, domain.TransferFailed},
		{domain.TransferAccepted, domain.TransferInProgress}, {domain.TransferAccepted, domain.TransferInterrupted},
		{domain.TransferAccepted, domain.TransferCancelled}, {domain.TransferAccepted, domain.TransferFailed},
		{domain.TransferInProgress, domain.TransferInterrupted}, {domain.TransferInProgress, domain.TransferVerifying},
		{domain.TransferInProgress, domain.TransferCancelled}, {domain.TransferInProgress, domain.TransferFailed},
		{domain.TransferInterrupted, domain.TransferInProgress}, {domain.TransferInterrupted, domain.TransferCancelled},
		{domain.TransferInterrupted, domain.TransferFailed},
		{domain.TransferVerifying, domain.TransferCompleted}, {domain.TransferVerifying, domain.TransferFailed},
		{domain.TransferVerifying, domain.TransferInterrupted},
	} {
		allowed[p] = true
	}
	for _, from := range all {
		for _, to := range all {
			if got := from.CanMove(to); got != allowed[[2]domain.TransferState{from, to}] {
				t.Errorf("%v → %v: CanMove = %v", from, to, got)
			}
		}
		back, err := domain.ParseTransferState(from.String())
		if err != nil || back != from {
			t.Errorf("state name round trip %v: %v %v", from, back, err)
		}
	}
}

func TestTransferDeclineAndFail(t *testing.T) {
	t.Parallel()
	tr, _ := domain.NewTransfer(domain.NewTransferID(), bob, domain.Outgoing, oneFile(t, 10), now)
	if err := tr.Decline(now); err != nil {
		t.Fatal(err)
	}
	if err := tr.Accept(now); err == nil {
		t.Fatal("accepted after decline")
	}
	tr2, _ := domain.NewTransfer(domain.NewTransferID(), bob, domain.Outgoing, oneFile(t, 10), now)
	_ = tr2.Accept(now)
	if err := tr2.Fail("disk full", now); err != nil || tr2.Reason() != "disk full" {
		t.Fatalf("fail: %v %q", err, tr2.Reason())
	}
	snap := tr2.WithSource("/tmp/x").Snapshot()
	back := domain.RestoreTransfer(snap)
	if back.State() != domain.TransferFailed || back.Reason() != "disk full" || back.Source() != "/tmp/x" || back.ID() != tr2.ID() {
		t.Fatalf("snapshot round trip: %+v", back.Snapshot())
	}
}

func TestNewManifestChecksPeerInput(t *testing.T) {
	t.Parallel()
	ok := []domain.FileEntry{{Path: "dir/a.txt", Size: 1}, {Path: "b.txt", Size: 2}}
	m, err := domain.NewManifest("photos", ok)
	if err != nil || m.TotalSize() != 3 || !m.IsFolder() {
		t.Fatalf("manifest: %+v %v", m, err)
	}
	bad := [][]domain.FileEntry{
		nil,
		{{Path: "../x", Size: 1}},
		{{Path: "/etc/passwd", Size: 1}},
		{{Path: "a\\b", Size: 1}},
		{{Path: "a//b", Size: 1}},
		{{Path: "a/./b", Size: 1}},
		{{Path: "NUL", Size: 1}},
		{{Path: "x\x1b[31m", Size: 1}},
		{{Path: "a", Size: -1}},
		{{Path: "a", Size: 1}, {Path: "a", Size: 1}},
	}
	for _, files := range bad {
		if _, err := domain.NewManifest("x", files); err == nil {
			t.Errorf("NewManifest(%v) accepted", files)
		}
	}
	if m, _ := domain.NewManifest("../../evil\x1b.txt", []domain.FileEntry{{Path: "a", Size: 1}}); m.Name != "evil_.txt" {
		t.Errorf("manifest name not made safe: %q", m.Name)
	}
}

func TestTransferAverageCountsOnlyMovingRuns(t *testing.T) {
	t.Parallel()
	tr, err := domain.NewTransfer(domain.NewTransferID(), bob, domain.Incoming, oneFile(t, 1000), now)
	if err != nil {
		t.Fatal(err)
	}
	at := func(sec int) time.Time { return now.Add(time.Duration(sec) * time.Second) }
	for _, step := range []error{
		tr.Accept(at(0)), tr.Start(0, at(1)), tr.Progress(400, at(3)), // 400 B in 2 s
		tr.Interrupt(at(3)),
		tr.Resume(300, at(60)), tr.Progress(1000, at(67)), // 700 B in 7 s; the pause does not count
		tr.Verify(at(67)), tr.Complete(at(68)),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	if tr.Elapsed() != 9*time.Second || tr.AverageRate() != 1100.0/9 {
		t.Fatalf("elapsed %v average %v, want 9s and %v", tr.Elapsed(), tr.AverageRate(), 1100.0/9)
	}
}

func TestTransferETAIsBounded(t *testing.T) {
	t.Parallel()
	tr, err := domain.NewTransfer(domain.NewTransferID(), bob, domain.Incoming, oneFile(t, 1<<40), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Accept(now); err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(0, now); err != nil {
		t.Fatal(err)
	}
	if err := tr.Progress(1, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if eta := tr.ETA(); eta <= 0 || eta > 100*24*time.Hour {
		t.Fatalf("ETA %v at 1 B/s for a TiB: want positive and at most 100 days", eta)
	}
}
