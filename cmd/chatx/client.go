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

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/files"
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
	link := tcp.DefaultConfig()
	link.ListenAddr = tcp.ListenAddr(f.listenTCP)
	return chatx.ClientConfig{
		Profile:   storage.ProfileDir(f.profile),
		Downloads: files.DownloadDir(f.downloads),
		Link:      link,
		Files:     udp.Config{ListenAddr: udp.ListenAddr(f.listenUDP)},
		Directory: registry.ClientConfig{URL: registry.RegistryURL(f.registry), Profile: registry.ProfileDir(f.profile)},
		Options:   opts,
	}
}
