package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/gdamore/tcell/v2"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/tui"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
)

func runTUI(ctx context.Context, args []string, stderr io.Writer) error {
	var f clientFlags
	fs := newFlagSet("chatx", "chatx [--name NAME] [--profile DIR] [--registry URL] [--downloads DIR]",
		"Opens the terminal client. The first run asks for a name, makes an identity key and signs up;\nlater runs log in by themselves. Press F1 in the client for help; 'chatx help' lists the other commands.", stderr)
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.resolve(); err != nil {
		return err
	}
	if f.logFile == "" {
		f.logFile = filepath.Join(f.profile, "chatx.log")
	}
	logger, closeLog, err := openLog(f.logFile, stderr, f.verbose)
	if err != nil {
		return err
	}
	defer closeLog()
	if err := openTUI(ctx, &f, logger); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bye. Received files are in %s\n", f.downloads)
	return nil
}

// openTUI makes sure the profile has an identity (asking for a name in a
// dialog on first run), builds the real client and runs the terminal UI on it.
func openTUI(ctx context.Context, f *clientFlags, logger *slog.Logger) error {
	me, err := identity(ctx, f, func() (string, error) {
		screen, err := tcell.NewScreen()
		if err != nil {
			return "", fmt.Errorf("terminal: %w", err)
		}
		return tui.AskName(screen, func(s string) error { _, err := domain.ParseUsername(s); return err })
	})
	if err != nil {
		return err
	}
	client, cleanup, err := chatx.InitClient(clientConfig(f, app.Options{}), me, logger)
	if err != nil {
		return err
	}
	defer cleanup()
	return runUI(ctx, client, logger)
}

// runUI runs the client and the terminal UI on it until the user quits, or
// until the client stops by itself (for instance: the name is taken).
func runUI(ctx context.Context, client *app.Client, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The UI subscribes to the client's events when it is built, so build it
	// before the client starts and it sees the first registry status.
	screen, err := tcell.NewScreen()
	if err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	ui, closeUI, err := tui.New(client, screen, tui.Options{}, logger)
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
