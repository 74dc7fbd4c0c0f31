package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
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
