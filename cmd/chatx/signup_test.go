package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/domain"
)

// TestTakenNameAsksAgain: a taken name never bricks a profile that has not
// signed up. The first run asks again with the reason; a later start of the
// same profile does too; once a name was bound, the error says what to do.
func TestTakenNameAsksAgain(t *testing.T) {
	f := &clientFlags{profile: filepath.Join(t.TempDir(), "p")}
	taken := map[string]bool{"alice": true, "alice2": true}
	var asked []string
	answers := []string{"alice", "alice2", "alice3"}
	ask := func(reason string) (string, error) {
		asked = append(asked, reason)
		if len(answers) == 0 {
			return "", errors.New("no more answers")
		}
		a := answers[0]
		answers = answers[1:]
		return a, nil
	}
	var ran []string
	profile := f.profile
	run := func(me domain.LocalIdentity) error {
		ran = append(ran, me.Name().String())
		if taken[me.Name().String()] {
			return fmt.Errorf("register %s: %w", me.Name(), domain.ErrNameTaken)
		}
		return storage.MarkBound(storage.ProfileDir(profile), me.Name())
	}
	if err := signUpAndRun(context.Background(), f, ask, run); err != nil {
		t.Fatalf("signUpAndRun: %v", err)
	}
	if strings.Join(ran, ",") != "alice,alice2,alice3" {
		t.Fatalf("ran as %v, want alice, alice2, alice3", ran)
	}
	if asked[0] != "" || !strings.Contains(asked[1], `"alice" is taken`) || !strings.Contains(asked[2], `"alice2" is taken`) {
		t.Fatalf("asked with reasons %q", asked)
	}
	if u, bound, err := storage.BoundName(storage.ProfileDir(f.profile)); err != nil || !bound || u.String() != "alice3" {
		t.Fatalf("bound name %v %v %v, want alice3", u, bound, err)
	}

	// A later start on a profile that never signed up asks again, too.
	g := &clientFlags{profile: filepath.Join(t.TempDir(), "q"), name: "alice"}
	if _, err := identity(context.Background(), g, nil); err != nil {
		t.Fatal(err)
	}
	g.name = ""
	profile = g.profile
	asked, ran, answers = nil, nil, []string{"bob"}
	if err := signUpAndRun(context.Background(), g, ask, run); err != nil {
		t.Fatalf("later start: %v", err)
	}
	if strings.Join(ran, ",") != "alice,bob" || len(asked) != 1 || !strings.Contains(asked[0], "taken") {
		t.Fatalf("later start ran %v, asked %q", ran, asked)
	}

	// A bound profile whose name the registry no longer grants: say what to do.
	taken["bob"] = true
	err := signUpAndRun(context.Background(), g, ask, run)
	if !errors.Is(err, domain.ErrNameTaken) || !strings.Contains(err.Error(), "another --profile") {
		t.Fatalf("bound and taken: %v", err)
	}
}
