package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/app"
)

func runRegistry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("chatx registry", "chatx registry [--listen ADDR] [--data DIR] [--tls-cert F --tls-key F] [--stun-listen ADDR | --stun=false] [--turn URL[,URL…] --turn-secret-file F]",
		"Runs the registry server: it binds names to keys and tells who is online where. It never sees messages or files.", stderr)
	listen := fs.String("listen", ":5000", "`addr` to listen on (HTTPS)")
	data := fs.String("data", defaultRegistryData(), "`dir` for accounts and the generated TLS certificate")
	cert := fs.String("tls-cert", "", "PEM certificate `file` to serve instead of the generated self-signed one")
	key := fs.String("tls-key", "", "PEM private key `file` for --tls-cert")
	stunOn := fs.Bool("stun", true, "answer STUN Binding requests on two UDP ports (see --stun-listen)")
	stunListen := fs.String("stun-listen", "", "UDP `addr` of the first STUN port, the second is the next port up (default: the --listen host and port)")
	turnURLs := fs.String("turn", "", "comma-separated TURN `urls` of an external relay (coturn with use-auth-secret) to hand credentials for")
	turnSecret := fs.String("turn-secret-file", "", "`file` holding the external relay's static-auth-secret (for --turn)")
	verbose := fs.Bool("v", false, "verbose (debug) logging")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*cert == "") != (*key == "") {
		fmt.Fprintln(stderr, "chatx registry: --tls-cert and --tls-key go together")
		return errUsage
	}
	turn, err := externalTURN(*turnURLs, *turnSecret)
	if err != nil {
		fmt.Fprintln(stderr, "chatx registry:", err)
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
			TLSCert: registry.TLSCertFile(*cert), TLSKey: registry.TLSKeyFile(*key),
			NoSTUN: !*stunOn, STUNListen: *stunListen, TURN: turn},
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

// externalTURN reads --turn and --turn-secret-file: both or neither.
func externalTURN(urls, secretFile string) ([]registry.TURNServer, error) {
	if (urls == "") != (secretFile == "") {
		return nil, errors.New("--turn and --turn-secret-file go together")
	}
	if urls == "" {
		return nil, nil
	}
	var list []string
	for u := range strings.SplitSeq(urls, ",") {
		u = strings.TrimSpace(u)
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			return nil, fmt.Errorf("--turn %q: want a turn: or turns: URL", u)
		}
		list = append(list, u)
	}
	b, err := os.ReadFile(secretFile)
	if err != nil {
		return nil, fmt.Errorf("--turn-secret-file: %w", err)
	}
	secret := bytes.TrimSpace(b)
	if len(secret) == 0 {
		return nil, fmt.Errorf("--turn-secret-file %s is empty", secretFile)
	}
	return []registry.TURNServer{{URLs: list, Secret: secret}}, nil
}
