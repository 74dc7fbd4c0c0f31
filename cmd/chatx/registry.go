package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/redisstore"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/app"
)

func runRegistry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("chatx registry", "chatx registry [--listen ADDR] [--data DIR] [--tls-cert F --tls-key F] [--stun-listen ADDR | --stun=false] [--relay-listen ADDR | --relay=false] [--turn URL[,URL…] --turn-secret-file F] [--store redis://HOST:6379/0 [--store-password-file F]]",
		"Runs the registry server: it binds names to keys and tells who is online where. It never sees messages or files.\n"+
			"It answers STUN on two UDP ports and runs a TURN relay (docs/relay.md) for peers that cannot reach each other\n"+
			"directly; the relay carries only ciphertext.", stderr)
	listen := fs.String("listen", ":5000", "`addr` to listen on (HTTPS)")
	data := fs.String("data", defaultRegistryData(), "`dir` for accounts and the generated TLS certificate")
	cert := fs.String("tls-cert", "", "PEM certificate `file` to serve instead of the generated self-signed one")
	key := fs.String("tls-key", "", "PEM private key `file` for --tls-cert")
	stunOn := fs.Bool("stun", true, "answer STUN Binding requests on two UDP ports (see --stun-listen)")
	stunListen := fs.String("stun-listen", "", "UDP `addr` of the first STUN port, the second is the next port up (default: the --listen host and port)")
	turnURLs := fs.String("turn", "", "comma-separated TURN `urls` of an external relay (coturn with use-auth-secret) to hand credentials for")
	turnSecret := fs.String("turn-secret-file", "", "`file` holding the external relay's static-auth-secret (for --turn)")
	store := fs.String("store", "file", "where accounts and sessions live: `file` (the embedded store in --data, one node) or redis://HOST:6379/DB (rediss:// for TLS), shared by several registry nodes (docs/scaling.md)")
	storePass := fs.String("store-password-file", "", "`file` holding the Redis password (for --store redis://…)")
	verbose := fs.Bool("v", false, "verbose (debug) logging")
	listUsers := fs.Bool("list-users", true, "list every online user to every client; false: only lookups by exact name (clients then find people by name)")
	relayCfg := relayFlags(fs)
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

	rcfg := chatx.RegistryConfig{
		Server: registry.ServerConfig{Listen: registry.ListenAddr(*listen), Data: registry.DataDir(dir),
			TLSCert: registry.TLSCertFile(*cert), TLSKey: registry.TLSKeyFile(*key),
			NoSTUN: !*stunOn, STUNListen: *stunListen, TURN: turn, HideUsers: !*listUsers},
		Data:    registry.DataDir(dir),
		Service: app.RegistryOptions{Logger: logger},
		Relay:   relayCfg(),
		Redis:   redisstore.Config{URL: redisstore.URL(*store), PasswordFile: redisstore.PasswordFile(*storePass)},
	}
	init := chatx.InitRegistry
	switch {
	case *store == "file":
		if *storePass != "" {
			fmt.Fprintln(stderr, "chatx registry: --store-password-file goes with --store redis://…")
			return errUsage
		}
	case strings.HasPrefix(*store, "redis://"), strings.HasPrefix(*store, "rediss://"):
		init = chatx.InitSharedRegistry
	default:
		fmt.Fprintln(stderr, "chatx registry: --store wants file, redis://HOST:PORT/DB or rediss://HOST:PORT/DB")
		return errUsage
	}
	reg, cleanup, err := init(rcfg, logger)
	if err != nil {
		return err
	}
	defer cleanup()
	handOutRelay(reg)
	return serveRegistry(ctx, reg)
}

// handOutRelay puts the embedded relay (when it runs) among the TURN
// servers whose credentials GET /v1/relays hands to registered sessions.
func handOutRelay(reg *chatx.RegistryServer) {
	if reg.Relay == nil {
		return
	}
	reg.Server.AddTURN(registry.TURNServer{URLs: reg.Relay.URLs(""), Secret: reg.Relay.Secret(), TTL: reg.Relay.CredentialTTL()})
	reg.Server.AddMetrics(reg.Relay)
}

// relayFlags are the flags of the embedded TURN relay (docs/relay.md); the
// returned function reads them after parsing.
func relayFlags(fs *flag.FlagSet) func() relay.Config {
	cfg := relay.Config{Rate: relay.DefaultRate, Ports: relay.PortRange{Min: 49152, Max: 65535}}
	on := fs.Bool("relay", true, "run the embedded TURN relay (--relay=false turns it off)")
	listen := fs.String("relay-listen", string(relay.DefaultListen), "`addr` of the TURN relay, UDP and TCP on one port")
	fs.StringVar(&cfg.RelayIP, "relay-ip", "", "IPv4 `address` peers send relayed traffic to (default: the listen IP, or the first non-loopback interface address)")
	fs.Var(&cfg.Ports, "relay-ports", "`min-max` UDP ports of relayed addresses")
	fs.Var(&cfg.Rate, "relay-rate", "`rate` cap per allocation and direction in bits/s, like 10M or 512k; 0 = unlimited")
	fs.Var(&cfg.DeniedPeers, "relay-deny-peers", "comma-separated `cidrs` the relay never sends to (e.g. the relay host's private networks)")
	fs.IntVar(&cfg.UserQuota, "relay-user-quota", relay.DefaultUserQuota, "allocations one user may hold at once")
	fs.IntVar(&cfg.MaxAllocations, "relay-max-allocations", relay.DefaultMaxAllocations, "allocations over all users")
	return func() relay.Config {
		cfg.Disabled = !*on
		cfg.Listen = relay.ListenAddr(*listen)
		return cfg
	}
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
