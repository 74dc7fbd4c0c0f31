package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// TestRegisterWrapsOnce: an error that names the action already is not
// wrapped again ("register alice: register alice: …").
func TestRegisterWrapsOnce(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		dirErr error
		want   string
	}{
		{fmt.Errorf("register alice: registry: %w", domain.ErrNameTaken), "register alice: registry: name is bound to another key"},
		{domain.ErrNameTaken, "register alice: name is bound to another key"},
	} {
		w.dir.regErr = tc.dirErr
		r, err := app.NewRegister(w.me, w.dir, w.link, fakeTransport{})
		if err != nil {
			t.Fatal(err)
		}
		err = r.Handle(context.Background(), app.RegisterInput{})
		if !errors.Is(err, domain.ErrNameTaken) || err.Error() != tc.want {
			t.Fatalf("Handle: %q, want %q", err, tc.want)
		}
	}
}

// TestCertificateMismatchIsFlagged: a directory whose certificate does not
// match the pin is reported with CertChanged, so interfaces warn in full.
func TestCertificateMismatchIsFlagged(t *testing.T) {
	w := newWorld(t)
	d, err := app.NewDiscoverPeers(w.me, w.dir, w.trust, w.verify, w.events, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	run(t, func(ctx context.Context) { d.Watch(ctx, nil) })
	w.dir.events <- ports.DirectoryEvent{Kind: ports.Disconnected, Err: fmt.Errorf("presence stream: %w", ports.ErrDirectoryCertChanged)}
	w.dir.events <- ports.DirectoryEvent{Kind: ports.Disconnected, Err: errors.New("connection refused")}
	waitFor(t, "both status events", func() bool {
		var got []ports.DirectoryStatusEvent
		for _, e := range w.events.all() {
			if s, ok := e.(ports.DirectoryStatusEvent); ok {
				got = append(got, s)
			}
		}
		return len(got) == 2 && got[0].CertChanged && !got[1].CertChanged
	})
}
