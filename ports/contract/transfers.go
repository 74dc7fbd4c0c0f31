package contract

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func newTransfer(t *testing.T, peer string, dir domain.Direction, sec int) domain.Transfer {
	t.Helper()
	m, err := domain.NewManifest("photos", []domain.FileEntry{
		{Path: "a/one.jpg", Size: 1000, Hash: sha256.Sum256([]byte("one"))},
		{Path: "two.jpg", Size: 24, Hash: sha256.Sum256([]byte("two"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := domain.NewTransfer(domain.NewTransferID(), domain.MustUsername(peer), dir, m, at(sec))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func sameTransfer(t *testing.T, got, want domain.Transfer) {
	t.Helper()
	g, w := got.Snapshot(), want.Snapshot()
	switch {
	case g.ID != w.ID:
		t.Fatalf("ID %s, want %s", g.ID, w.ID)
	case !g.Peer.Equal(w.Peer) || g.Direction != w.Direction:
		t.Fatalf("peer %s %s, want %s %s", g.Peer, g.Direction, w.Peer, w.Direction)
	case g.State != w.State || g.Done != w.Done || g.Reason != w.Reason || g.Source != w.Source:
		t.Fatalf("got %s done %d reason %q source %q; want %s %d %q %q", g.State, g.Done, g.Reason, g.Source, w.State, w.Done, w.Reason, w.Source)
	case !g.CreatedAt.Equal(w.CreatedAt) || !g.UpdatedAt.Equal(w.UpdatedAt):
		t.Fatalf("times %v %v, want %v %v", g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt)
	case g.Rate != w.Rate || !g.LastTick.Equal(w.LastTick) || g.LastDone != w.LastDone ||
		!g.RunStart.Equal(w.RunStart) || g.RunDone != w.RunDone || g.Active != w.Active || g.Moved != w.Moved:
		t.Fatalf("rate fields %+v, want %+v", g, w)
	case g.Manifest.Name != w.Manifest.Name || len(g.Manifest.Files) != len(w.Manifest.Files):
		t.Fatalf("manifest %q with %d files, want %q with %d", g.Manifest.Name, len(g.Manifest.Files), w.Manifest.Name, len(w.Manifest.Files))
	}
	for i := range w.Manifest.Files {
		if g.Manifest.Files[i] != w.Manifest.Files[i] {
			t.Fatalf("file %d: %+v, want %+v", i, g.Manifest.Files[i], w.Manifest.Files[i])
		}
	}
}

// TransferStore checks the promises of ports.TransferStore. open returns a
// new, empty store for each subtest.
func TransferStore(t *testing.T, open func(t *testing.T) ports.TransferStore) {
	t.Run("get of an unknown transfer", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		if _, err := s.Get(ctx, domain.NewTransferID()); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("Get: %v, want ErrNotFound", err)
		}
		if l, err := s.List(ctx); err != nil || len(l) != 0 {
			t.Fatalf("List of an empty store: %d, %v", len(l), err)
		}
	})

	t.Run("save, get and replace", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		tr := newTransfer(t, "bob", domain.Outgoing, 1).WithSource("/home/alice/photos")
		if err := s.Save(ctx, tr); err != nil {
			t.Fatalf("Save: %v", err)
		}
		got, err := s.Get(ctx, tr.ID())
		if err != nil {
			t.Fatal(err)
		}
		sameTransfer(t, got, tr)

		for _, step := range []func() error{
			func() error { return tr.Accept(at(2)) },
			func() error { return tr.Start(0, at(3)) },
			func() error { return tr.Progress(512, at(4)) },
			func() error { return tr.Interrupt(at(5)) },
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Save(ctx, tr); err != nil {
			t.Fatalf("Save of a changed transfer: %v", err)
		}
		got, err = s.Get(ctx, tr.ID())
		if err != nil {
			t.Fatal(err)
		}
		sameTransfer(t, got, tr)
		if got.State() != domain.TransferInterrupted || got.Done() != 512 {
			t.Fatalf("stored %s at %d, want interrupted at 512", got.State(), got.Done())
		}
		if err := got.Resume(got.Done(), at(6)); err != nil {
			t.Fatalf("a restored transfer cannot resume: %v", err)
		}
		if l, _ := s.List(ctx); len(l) != 1 {
			t.Fatalf("List after replacing: %d transfers, want 1", len(l))
		}
	})

	t.Run("save soon is visible at once", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		tr := newTransfer(t, "bob", domain.Outgoing, 1)
		if err := s.Save(ctx, tr); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if err := tr.Accept(at(2)); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveSoon(ctx, tr); err != nil {
			t.Fatalf("SaveSoon: %v", err)
		}
		got, err := s.Get(ctx, tr.ID())
		if err != nil {
			t.Fatal(err)
		}
		sameTransfer(t, got, tr)
		if got.State() != domain.TransferAccepted {
			t.Fatalf("Get after SaveSoon: %s, want accepted", got.State())
		}
		fresh := newTransfer(t, "carol", domain.Incoming, 3)
		if err := s.SaveSoon(ctx, fresh); err != nil {
			t.Fatalf("SaveSoon of a new transfer: %v", err)
		}
		if l, err := s.List(ctx); err != nil || len(l) != 2 {
			t.Fatalf("List after SaveSoon of a new transfer: %d, %v; want 2", len(l), err)
		}
	})

	t.Run("rate and average survive a reload at every tick", func(t *testing.T) {
		// The use-cases load, move and save the transfer at every progress
		// tick; a store that drops the tick fields measures from the zero
		// time (a rate of ~0 and an ETA of centuries).
		ctx, s := ctxFor(t), open(t)
		tr := newTransfer(t, "bob", domain.Incoming, 1) // 1024 bytes
		if err := tr.Accept(at(2)); err != nil {
			t.Fatal(err)
		}
		if err := tr.Start(0, at(3)); err != nil {
			t.Fatal(err)
		}
		id := tr.ID()
		step := func(change func(tr *domain.Transfer) error) domain.Transfer {
			t.Helper()
			if err := s.Save(ctx, tr); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if err := change(&got); err != nil {
				t.Fatal(err)
			}
			tr = got
			return got
		}
		// 128 bytes a second, for four seconds.
		for sec := 1; sec <= 4; sec++ {
			step(func(tr *domain.Transfer) error { return tr.Progress(int64(128*sec), at(3+sec)) })
		}
		if tr.Rate() != 128 {
			t.Fatalf("rate after reloads %v B/s, want 128", tr.Rate())
		}
		if want := 4 * time.Second; tr.ETA() != want { // 512 bytes left
			t.Fatalf("ETA after reloads %v, want %v", tr.ETA(), want)
		}
		step(func(tr *domain.Transfer) error { return tr.RecordSaved("photos (1)") })
		step(func(tr *domain.Transfer) error { return tr.Verify(at(11)) }) // 1024 bytes in 8 s
		got := step(func(tr *domain.Transfer) error { return tr.Complete(at(12)) })
		got = step(func(*domain.Transfer) error { return nil })
		if got.AverageRate() != 128 || got.Elapsed() != 8*time.Second {
			t.Fatalf("finished: average %v B/s over %v, want 128 B/s over 8s", got.AverageRate(), got.Elapsed())
		}
		if got.SavedAs() != "photos (1)" {
			t.Fatalf("saved as %q after reloads, want the folder's final name", got.SavedAs())
		}
	})

	t.Run("list newest first", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		var want []domain.TransferID
		for _, sec := range []int{5, 1, 9, 3} {
			tr := newTransfer(t, "carol", domain.Incoming, sec)
			if err := s.Save(ctx, tr); err != nil {
				t.Fatal(err)
			}
			want = append(want, tr.ID())
		}
		want = []domain.TransferID{want[2], want[0], want[3], want[1]}
		list, err := s.List(ctx)
		if err != nil || len(list) != len(want) {
			t.Fatalf("List: %d transfers (%v), want %d", len(list), err, len(want))
		}
		for i := range want {
			if list[i].ID() != want[i] {
				t.Fatalf("List[%d] created %v; the list is not newest first", i, list[i].CreatedAt())
			}
		}
	})
}
