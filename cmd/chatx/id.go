package main

import (
	"context"
	"fmt"
	"io"

	"github.com/chatx/chatx/adapters/storage"
)

func runID(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f clientFlags
	fs := newFlagSet("chatx id", "chatx id [--profile DIR] [--name NAME]",
		"Prints this profile's name, peer ID and fingerprint (creating the identity when --name is given on first run).", stderr)
	f.registerIdentity(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.resolve(); err != nil {
		return err
	}
	// With --name the identity may be created or renamed: that writes the
	// profile, so it takes the profile's lock like every client does.
	// Without it, id only reads, and may run beside the client (to read
	// one's fingerprint out while chatting).
	if f.name != "" {
		unlock, err := storage.LockProfile(storage.ProfileDir(f.profile))
		if err != nil {
			return err
		}
		defer unlock()
	}
	me, err := identity(ctx, &f, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "name:        %s\npeer id:     %s\nfingerprint: %s\nprofile:     %s\n", me.Name(), me.PeerID(), me.Fingerprint(), f.profile)
	return nil
}
