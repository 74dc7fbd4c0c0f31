package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/adapters/tui"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
)

func runTUI(ctx context.Context, args []string, stderr io.Writer) error {
	var f clientFlags
	fs := newFlagSet("chatx", "chatx [--name NAME] [--profile DIR] [--registry URL] [--downloads DIR]",
		"Opens the terminal client. The first run asks for a name, makes an identity key and signs up;\nlater runs log in by themselves. Press F1 in the client for help; 'chatx help' lists the other commands.", stderr)
	f.register(fs)
	bell := fs.Bool("bell", true, "ring the terminal bell for a message in a conversation that is not on screen")
	fs.DurationVar(&f.awayAfter, "away-after", 10*time.Minute, "show you away to your contacts after `duration` without a key (0 or less: never)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.resolve(); err != nil {
		return err
	}
	f.noBell = !*bell
	if f.awayAfter <= 0 {
		f.awayAfter = -1 // tui.Options: negative is never
	}
	if f.logFile == "" {
		f.logFile = filepath.Join(f.profile, "chatx.log")
	}
	logger, closeLog, err := openLog(f.logFile, stderr, f.verbose)
	if err != nil {
		return err
	}
	defer closeLog()
	unlock, err := storage.LockProfile(storage.ProfileDir(f.profile))
	if err != nil {
		return err
	}
	defer unlock()
	if err := openTUI(ctx, &f, logger); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bye. Received files are in %s\n", f.downloads)
	return nil
}

// openTUI makes sure the profile has an identity (asking for a name in a
// dialog on first run), builds the real client and runs the terminal UI on
// it.
func openTUI(ctx context.Context, f *clientFlags, logger *slog.Logger) error {
	ask := func(reason string) (string, error) {
		screen, err := tcell.NewScreen()
		if err != nil {
			return "", fmt.Errorf("terminal: %w", err)
		}
		return tui.AskNameAgain(screen, func(s string) error { _, err := domain.ParseUsername(s); return err }, reason)
	}
	return signUpAndRun(ctx, f, ask, func(me domain.LocalIdentity) error {
		client, cleanup, err := chatx.InitClient(clientConfig(f, app.Options{}), me, logger)
		if err != nil {
			return err
		}
		defer cleanup()
		recordCtx, stopRecording := context.WithCancel(ctx)
		defer stopRecording()
		recordBound(recordCtx, client, f, logger)
		return runUI(ctx, client, tui.Options{NoBell: f.noBell, DownloadDir: f.downloads, AwayAfter: f.awayAfter}, logger)
	})
}

// signUpAndRun loads or makes the identity (ask gets the name on first
// run, with the reason the last one did not do, "" at first) and runs the
// client with it. When the registry says the name is taken and the profile
// never signed up under it (on first run as on any later one), it asks
// again for another name and runs again.
func signUpAndRun(ctx context.Context, f *clientFlags, ask func(reason string) (string, error), run func(domain.LocalIdentity) error) error {
	me, err := identity(ctx, f, func() (string, error) { return ask("") })
	if err != nil {
		return err
	}
	for {
		err := run(me)
		if !errors.Is(err, domain.ErrNameTaken) {
			return err
		}
		if _, bound, berr := storage.BoundName(storage.ProfileDir(f.profile)); berr != nil || bound {
			return nameTakenAdvice(err, f, me)
		}
		name, aerr := ask(fmt.Sprintf("The name %q is taken: the registry knows it by another key. Pick another one.", me.Name()))
		if aerr != nil {
			return nameTakenAdvice(err, f, me)
		}
		if me, err = renameIdentity(ctx, f, me, name); err != nil {
			return err
		}
	}
}

// runUI runs the client and the terminal UI on it until the user quits, or
// until the client stops by itself (for instance: the name is taken).
func runUI(ctx context.Context, client *app.Client, opts tui.Options, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The UI subscribes to the client's events when it is built, so build it
	// before the client starts and it sees the first registry status.
	screen, err := tcell.NewScreen()
	if err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	ui, closeUI, err := tui.New(client, screen, opts, logger)
	if err != nil {
		return err
	}
	defer closeUI()

	errc := make(chan error, 1)
	go func() {
		err := client.Run(ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			cancel() // close the UI: the client cannot go on
		}
		errc <- err
	}()
	uiErr := ui.Run(ctx)
	cancel()
	clientErr := <-errc
	if clientErr != nil && !errors.Is(clientErr, context.Canceled) {
		return clientErr
	}
	return uiErr
}
