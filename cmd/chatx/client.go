package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/files"
	"github.com/chatx/chatx/adapters/lan"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// openLog returns a logger writing to path (created 0600) or to fallback.
func openLog(path string, fallback io.Writer, verbose bool) (*slog.Logger, func(), error) {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	out, closer := fallback, func() {}
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, nil, fmt.Errorf("log dir: %w", err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("open log: %w", err)
		}
		out, closer = f, func() { _ = f.Close() }
	}
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
	// Code that logs through slog's default (the use-cases) must not write
	// over the terminal UI either.
	slog.SetDefault(logger)
	return logger, closer, nil
}

// identity loads the profile's identity or, on first run, makes one for a
// name: --name if given, else ask() (nil: the name is required). A profile
// whose name no registry ever bound (storage.BoundName) is not tied to it
// yet: --name gives it another name, with the same key.
func identity(ctx context.Context, f *clientFlags, ask func() (string, error)) (domain.LocalIdentity, error) {
	if err := os.MkdirAll(f.profile, 0o700); err != nil {
		return domain.LocalIdentity{}, fmt.Errorf("profile %s: %w", f.profile, err)
	}
	keys, err := keyStore(f)
	if err != nil {
		return domain.LocalIdentity{}, err
	}
	me, err := keys.Load(ctx)
	if err == nil {
		if f.name == "" {
			return me, nil
		}
		u, err := domain.ParseUsername(f.name)
		if err != nil {
			return domain.LocalIdentity{}, fmt.Errorf("--name: %w", err)
		}
		if u.Equal(me.Name()) {
			return me, nil
		}
		if _, bound, err := storage.BoundName(storage.ProfileDir(f.profile)); err != nil {
			return domain.LocalIdentity{}, err
		} else if bound {
			return domain.LocalIdentity{}, fmt.Errorf("profile %s belongs to %q, whom the registry knows by this key; use another --profile for %q", f.profile, me.Name(), f.name)
		}
		return renameIdentity(ctx, f, me, f.name)
	}
	if !errors.Is(err, domain.ErrNoIdentity) {
		return domain.LocalIdentity{}, err
	}
	name := f.name
	if name == "" {
		if ask == nil {
			return domain.LocalIdentity{}, fmt.Errorf("profile %s has no identity yet: give --name to sign up", f.profile)
		}
		if name, err = ask(); err != nil {
			return domain.LocalIdentity{}, err
		}
	}
	u, err := domain.ParseUsername(name)
	if err != nil {
		return domain.LocalIdentity{}, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return domain.LocalIdentity{}, fmt.Errorf("generate key: %w", err)
	}
	me, err = domain.NewLocalIdentity(u, priv)
	if err != nil {
		return domain.LocalIdentity{}, err
	}
	if err := keys.Save(ctx, me); err != nil {
		return domain.LocalIdentity{}, err
	}
	return me, nil
}

func keyStore(f *clientFlags) (ports.KeyStore, error) {
	pass, err := f.passphrase()
	if err != nil {
		return nil, err
	}
	return chatx.InitKeyStore(storage.ProfileDir(f.profile), storage.Passphrase(pass)), nil
}

// renameIdentity gives a never-bound identity another name, keeping its key.
func renameIdentity(ctx context.Context, f *clientFlags, me domain.LocalIdentity, name string) (domain.LocalIdentity, error) {
	u, err := domain.ParseUsername(name)
	if err != nil {
		return domain.LocalIdentity{}, err
	}
	renamed, err := domain.NewLocalIdentity(u, me.PrivateKey())
	if err != nil {
		return domain.LocalIdentity{}, err
	}
	keys, err := keyStore(f)
	if err != nil {
		return domain.LocalIdentity{}, err
	}
	if err := keys.Save(ctx, renamed); err != nil {
		return domain.LocalIdentity{}, err
	}
	f.name = u.String()
	return renamed, nil
}

// nameTakenAdvice turns a taken name (domain.ErrNameTaken) into what to do
// about it; other errors pass unchanged.
func nameTakenAdvice(err error, f *clientFlags, me domain.LocalIdentity) error {
	if !errors.Is(err, domain.ErrNameTaken) {
		return err
	}
	if _, bound, berr := storage.BoundName(storage.ProfileDir(f.profile)); berr == nil && bound {
		return fmt.Errorf("%w\nThe registry binds %q to another key, though this profile signed up as %q before: its accounts were reset, or this is another registry. Use another --profile, or delete %s to start over",
			err, me.Name(), me.Name(), f.profile)
	}
	return fmt.Errorf("%w\nThe name %q is taken. This profile never signed up, so it can take another: run again with --name OTHER", err, me.Name())
}

// recordBound remembers, in the profile, the name the registry bound to our
// key, once the client says it registered (ports.RegisteredEvent). It
// subscribes at once; its goroutine ends with ctx.
func recordBound(ctx context.Context, c *app.Client, f *clientFlags, logger *slog.Logger) {
	events := c.Subscribe(ctx)
	go func() {
		for ev := range events {
			if e, ok := ev.(ports.RegisteredEvent); ok {
				if err := storage.MarkBound(storage.ProfileDir(f.profile), e.Name); err != nil {
					logger.Warn("record bound name", "err", err)
				}
			}
		}
	}()
}

// clientConfig maps resolved flags to the composition root's config.
func clientConfig(f *clientFlags, opts app.Options) chatx.ClientConfig {
	if opts.MaxIncomingSize == 0 {
		opts.MaxIncomingSize = app.MaxIncomingSize(f.maxIncomingN)
	}
	if f.acceptFromAnyone {
		opts.AcceptFromAnyone = true
	}
	if opts.FilePath == "" {
		opts.FilePath = f.filePathMode
	}
	link := tcp.DefaultConfig()
	link.ListenAddr = tcp.ListenAddr(f.listenTCP)
	return chatx.ClientConfig{
		Profile:   storage.ProfileDir(f.profile),
		Downloads: files.DownloadDir(f.downloads),
		Link:      link,
		Files:     udp.Config{ListenAddr: udp.ListenAddr(f.listenUDP), Stripes: f.fileStripes},
		Directory: registry.ClientConfig{URL: registry.RegistryURL(f.registry), Profile: registry.ProfileDir(f.profile)},
		LAN:       chatx.LANConfig{Enabled: lan.Enabled(f.lan)},
		Options:   opts,
	}
}

// runClient runs a built client until ctx ends and reports why it stopped.
// The client's Run error (e.g. the name is taken) is returned once, through errc.
func runClient(ctx context.Context, c *app.Client) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	return errc
}

// headless is a client started for a one-shot flow (send, receive, msg):
// logged in, with its events subscribed from before it started.
type headless struct {
	client  *app.Client
	me      domain.Identity
	events  <-chan ports.Event
	exited  chan struct{} // closed when Run returned; runErr is set then
	runErr  error
	cancel  context.CancelFunc
	cleanup func()
}

// startHeadless builds the client of f's (resolved) profile, runs it and
// returns once it is registered and follows presence. The client runs on a
// context of its own rather than on ctx, so that after Ctrl-C (ctx ends) a
// flow can still tell the peer before close stops the client. Logs go to
// f.logFile, by default the profile's chatx.log, so stderr stays the user's.
func startHeadless(ctx context.Context, f *clientFlags, opts app.Options, con *console) (*headless, error) {
	if f.logFile == "" {
		f.logFile = filepath.Join(f.profile, "chatx.log")
	}
	logger, closeLog, err := openLog(f.logFile, con.out, f.verbose)
	if err != nil {
		return nil, err
	}
	unlock, err := storage.LockProfile(storage.ProfileDir(f.profile))
	if err != nil {
		closeLog()
		return nil, err
	}
	me, err := identity(ctx, f, nil)
	if err != nil {
		unlock()
		closeLog()
		return nil, err
	}
	client, cleanup, err := chatx.InitClient(clientConfig(f, opts), me, logger)
	if err != nil {
		unlock()
		closeLog()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	recordBound(runCtx, client, f, logger)
	h := &headless{client: client, me: me.Identity, events: client.Subscribe(runCtx), exited: make(chan struct{}),
		cancel: cancel, cleanup: func() { cleanup(); unlock(); closeLog() }}
	go func() {
		defer close(h.exited)
		h.runErr = client.Run(runCtx)
	}()
	warned := false
	for {
		select {
		case ev, ok := <-h.events:
			if !ok {
				h.close()
				return nil, errors.New("the client stopped sending events")
			}
			if ds, ok := ev.(ports.DirectoryStatusEvent); ok {
				if ds.Connected {
					return h, nil
				}
				if !warned {
					con.statusf("registry %s unreachable (%s); retrying… (Ctrl-C to stop)", f.registry, shown(ds.Err))
					warned = true
				}
			}
		case <-h.exited:
			err := h.runErr
			h.close()
			if err == nil {
				err = errors.New("the client stopped")
			}
			return nil, fmt.Errorf("log in as %s: %w", me.Name(), err)
		case <-ctx.Done():
			h.close()
			return nil, exitf(exitInterrupted, "interrupted before logging in")
		}
	}
}

// stopped is the error that stopped the client by itself (it was not
// cancelled), for a flow that saw h.exited close.
func (h *headless) stopped() error {
	if h.runErr == nil {
		return errors.New("the client stopped")
	}
	return fmt.Errorf("the client stopped: %w", h.runErr)
}

// linkFlushGrace is how long a flow keeps the client up after it told a
// peer something on its way out (a cancellation).
const linkFlushGrace = time.Second

// told gives the envelopes just sent (a cancellation) time to leave before
// close. ports.MessageLink.Send returns once an envelope is queued on the
// link, not written, and the TCP link drops what is still queued when it
// shuts down: without this grace a loaded machine can stop before the peer
// hears of the cancellation, and its transfer then waits to resume.
func (h *headless) told() {
	t := time.NewTimer(linkFlushGrace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-h.exited:
	}
}

// close stops the client (it unregisters) and frees what it holds.
func (h *headless) close() {
	h.cancel()
	<-h.exited
	h.cleanup()
}

// isOnline reports whether the directory shows name online now.
func (h *headless) isOnline(ctx context.Context, name domain.Username) bool {
	peers, err := h.client.Peers(ctx)
	if err != nil {
		return false
	}
	for _, p := range peers {
		if p.Peer.Name().Equal(name) {
			return p.Peer.Online
		}
	}
	return false
}

// sendError explains why what (an offer, a message) could not be sent to
// a peer.
func sendError(what string, to domain.Username, err error) error {
	var kc *domain.KeyChangedError
	switch {
	case errors.As(err, &kc):
		return exitf(exitFailed, "%s: %s's key changed: compare safety numbers in the client (chatx) and accept the new key first: %w", what, to, err)
	case errors.Is(err, domain.ErrUnknownPeer), errors.Is(err, domain.ErrNotFound):
		return exitf(exitFailed, "%s: nobody is called %s at the registry: %w", what, to, err)
	}
	return exitf(exitFailed, "%s to %s: %w", what, to, err)
}
