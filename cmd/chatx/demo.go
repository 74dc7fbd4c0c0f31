package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

const demoBotName = "demo-bot"

// runDemo starts, in this process, a registry on loopback and a second peer
// (demo-bot, which answers messages and accepts files), then opens the
// terminal client on a fresh profile, so a newcomer can chat and send a file
// on one machine. Everything lives in a temporary folder removed at exit
// unless --keep is given.
func runDemo(ctx context.Context, args []string, stderr io.Writer) error {
	var f clientFlags
	fs := newFlagSet("chatx demo", "chatx demo [--name NAME] [--keep]",
		"Starts a local registry and a second peer, demo-bot, then opens the client on a fresh profile.\nSay hello to demo-bot, or send it a file with /send PATH.", stderr)
	fs.StringVar(&f.name, "name", "", "your name in the demo (default: asked in a dialog)")
	fs.BoolVar(&f.verbose, "v", false, "verbose (debug) logging to the demo's log file")
	keep := fs.Bool("keep", false, "keep the demo's temporary folder (profiles, downloads, logs)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	base, err := os.MkdirTemp("", "chatx-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(base)
	}
	logger, closeLog, err := openLog(filepath.Join(base, "demo.log"), stderr, f.verbose)
	if err != nil {
		return err
	}
	defer closeLog()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The registry, on loopback, pinned by its fingerprint.
	reg, cleanupReg, err := chatx.InitRegistry(chatx.RegistryConfig{
		Server:  registry.ServerConfig{Listen: "127.0.0.1:0", Data: registry.DataDir(filepath.Join(base, "registry"))},
		Data:    registry.DataDir(filepath.Join(base, "registry")),
		Service: app.RegistryOptions{Logger: logger.With("part", "registry")},
		Relay:   relay.Config{Listen: "127.0.0.1:0"},
	}, logger.With("part", "registry"))
	if err != nil {
		return fmt.Errorf("demo registry: %w", err)
	}
	defer cleanupReg()
	handOutRelay(reg)
	// The registry outlives the peers so they can unregister on the way out.
	regCtx, stopReg := context.WithCancel(context.Background())
	defer stopReg()
	regDone := make(chan error, 1)
	go func() { regDone <- serveRegistry(regCtx, reg) }()
	url := string(reg.Server.URL())

	// demo-bot, a real client with its own profile.
	bot := clientFlags{name: demoBotName, profile: filepath.Join(base, "bot"), registry: url,
		downloads: filepath.Join(base, "bot-downloads"), listenTCP: "127.0.0.1:0", listenUDP: "127.0.0.1:0"}
	botID, err := identity(ctx, &bot, nil)
	if err != nil {
		return err
	}
	botClient, cleanupBot, err := chatx.InitClient(clientConfig(&bot, app.Options{AutoAccept: true, AcceptFromAnyone: true}), botID, logger.With("part", "demo-bot"))
	if err != nil {
		return fmt.Errorf("demo-bot: %w", err)
	}
	defer cleanupBot()
	botDone := make(chan error, 1)
	go func() { botDone <- botClient.Run(ctx) }()
	go answerAsBot(ctx, botClient, logger)

	// The user, on a fresh profile.
	f.registry = url
	f.profile = filepath.Join(base, "you")
	f.downloads = filepath.Join(base, "downloads")
	f.listenTCP, f.listenUDP = "127.0.0.1:0", "127.0.0.1:0"
	uiErr := openTUI(ctx, &f, logger.With("part", "you"))
	cancel()
	<-botDone
	stopReg()
	<-regDone
	if *keep {
		fmt.Fprintf(stderr, "The demo's profiles, downloads and logs are kept in %s\n", base)
	} else {
		fmt.Fprintln(stderr, "The demo's temporary folder is removed now (chatx demo --keep keeps it).")
	}
	return uiErr
}

// answerAsBot makes demo-bot answer every message and report every file it
// received, so the newcomer sees both directions work.
func answerAsBot(ctx context.Context, c *app.Client, logger *slog.Logger) {
	for ev := range c.Subscribe(ctx) {
		var to domain.Username
		var text string
		switch e := ev.(type) {
		case ports.MessageEvent:
			if e.Message.Direction() != domain.Incoming {
				continue
			}
			to = e.Message.From()
			text = fmt.Sprintf("Hello %s! I got your message of %d bytes at %s. Try /send PATH to send me a file.",
				to, len(e.Message.Body()), e.Message.SentAt().Local().Format(time.Kitchen))
		case ports.TransferEvent:
			t := e.Transfer
			if t.Direction() != domain.Incoming || t.State() != domain.TransferCompleted {
				continue
			}
			to = t.Peer()
			text = fmt.Sprintf("Received %q: %d bytes, hash verified.", t.Manifest().Name, t.Total())
		default:
			continue
		}
		if _, err := c.Send(ctx, to, text); err != nil && !errors.Is(err, context.Canceled) {
			logger.Warn("demo-bot could not answer", "peer", to.String(), "err", err)
		}
	}
}
