package tui_test

import (
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/tui"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// The transfer row names the path the bytes ride, while they move and
// after.
func TestTransferRowShowsFilePath(t *testing.T) {
	t.Parallel()
	fake := newFake(t, "carol", peer(t, "bob", true))
	s := start(t, fake, tui.Options{}, 150, 32)
	s.waitText("● bob")
	const size = 4 << 20
	m, err := domain.NewManifest("film.mkv", []domain.FileEntry{{Path: "film.mkv", Size: size}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	tr, err := domain.NewTransfer(domain.NewTransferID(), domain.MustUsername("bob"), domain.Outgoing, m, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(*domain.Transfer) error{
		func(x *domain.Transfer) error { return x.Accept(t0) },
		func(x *domain.Transfer) error { return x.Start(0, t0) },
		func(x *domain.Transfer) error { *x = x.WithFilePath(domain.FilePathTCP); return nil },
		func(x *domain.Transfer) error { return x.Progress(size/2, t0.Add(2*time.Second)) },
	} {
		if err := step(&tr); err != nil {
			t.Fatal(err)
		}
	}
	s.fake.emit(t, ports.TransferEvent{Transfer: tr})
	s.waitText("↑ to bob film.mkv 4.0 MiB", "50%", "1.0 MiB/s", "ETA 0:02 via tcp")

	tr = tr.WithFilePath(domain.FilePathUDP) // the TCP path failed: on over UDP
	if err := tr.Verify(t0.Add(4 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Complete(t0.Add(4 * time.Second)); err != nil {
		t.Fatal(err)
	}
	s.fake.emit(t, ports.TransferEvent{Transfer: tr})
	s.waitText("film.mkv 4.0 MiB ✓ completed in 0:04, average 1.0 MiB/s via udp")
}
