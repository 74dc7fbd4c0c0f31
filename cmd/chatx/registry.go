package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/app"
)

func runRegistry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("chatx registry", "chatx registry [--listen ADDR] [--data DIR] [--tls-cert F --tls-key F]",
		"Runs the registry server: it binds names to keys and tells who is online where. It never sees messages or files.", stderr)
	listen := fs.String("listen", ":5000", "`addr` to listen on (HTTPS)")
	data := fs.String("data", defaultRegistryData(), "`dir` for accounts and the generated TLS certificate")
	cert := fs.String("tls-cert", "", "PEM certificate `file` to serve instead of the generated self-signed one")
	key := fs.String("tls-key", "", "PEM private key `file` for --tls-cert")
	verbose := fs.Bool("v", false, "verbose (debug) logging")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*cert == "") != (*key == "") {
		fmt.Fprintln(stderr, "chatx registry: --tls-cert and --tls-key go together")
		return errUsage
	}
	dir, err := filepath.Abs(*data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	logger, closeLog, err := openLog("", stdout, *verbose)
	if err != nil {
		return err
	}
	defer closeLog()

	reg, cleanup, err := chatx.InitRegistry(chatx.RegistryConfig{
		Server: registry.ServerConfig{Listen: registry.ListenAddr(*listen), Data: registry.DataDir(dir),
			TLSCert: registry.TLSCertFile(*cert), TLSKey: registry.TLSKeyFile(*key)},
		Data:    registry.DataDir(dir),
		Service: app.RegistryOptions{Logger: logger},
	}, logger)
	if err != nil {
		return err
	}
	defer cleanup()
	return serveRegistry(ctx, reg)
}

// serveRegistry runs the HTTPS server, and with it the service's reaper of
// expired sessions, until ctx ends.
func serveRegistry(ctx context.Context, reg *chatx.RegistryServer) error {
	if err := reg.Server.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func defaultRegistryData() string {
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "chatx-registry")
	}
	return "registry-data"
}
