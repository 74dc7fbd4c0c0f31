package chatx

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/chatx/chatx/adapters/files"
	"github.com/chatx/chatx/adapters/lan"
	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/redisstore"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/ports"
)

// ClientConfig is everything cmd/ decides for a client: where the profile
// and downloads live, how the links listen, which registry to use.
type ClientConfig struct {
	Profile   storage.ProfileDir
	Downloads files.DownloadDir
	Link      tcp.Config
	Files     udp.Config
	Directory registry.ClientConfig // URL NoRegistry: run without one
	LAN       LANConfig
	Options   app.Options
}

// NoRegistry as the registry URL runs the client without one (LAN only).
const NoRegistry registry.RegistryURL = "none"

// LANConfig says whether and how the client discovers peers on the LAN.
type LANConfig struct {
	Enabled lan.Enabled
	lan.Config
}

// RegistryConfig is everything cmd/ decides for a registry server.
type RegistryConfig struct {
	Server  registry.ServerConfig
	Data    registry.DataDir
	Service app.RegistryOptions
	// Relay is the embedded TURN server; its zero value runs it on :3478
	// (Relay.Disabled turns it off).
	Relay relay.Config
	// Redis is the shared store of InitSharedRegistry (unused by the
	// single-node InitRegistry).
	Redis redisstore.Config
	// Mailbox tunes the mailbox (quota, expiry sweep); MailboxHTTP its
	// routes (deposit rate, fetch size).
	Mailbox     app.MailboxOptions
	MailboxHTTP registry.MailboxConfig
}

// RegistryServer is a running registry: the service (whose Run reaps expired
// sessions), the HTTPS server in front of it and the embedded TURN relay
// (nil when disabled).
type RegistryServer struct {
	Service *app.Registry
	Server  *registry.Server
	Relay   *relay.Server
	// Mailbox parks sealed mail for offline users (its routes: MailRoutes).
	Mailbox    *app.RegistryMailbox
	MailRoutes *registry.MailboxRoutes
}

// newMemoryDirectory is the in-memory directory of InitMemoryClient. It is
// not tied to the client's host (the host's peer verifier needs the
// directory first), so network faults switched on for a host cut its links
// but not its registry session; tests that need both build clients by hand.
func newMemoryDirectory(reg ports.RegistryService, cfg memory.DirectoryConfig) (*memory.Directory, func(), error) {
	return memory.NewDirectory(reg, nil, cfg)
}

// newRegistryClient is the registry client, or nil when the registry URL
// is NoRegistry (the client then runs on the LAN alone). Providers that need
// the registry's Rendezvous must handle nil (ports.ErrNoRendezvous).
func newRegistryClient(cfg registry.ClientConfig, logger *slog.Logger) (*registry.Client, func(), error) {
	if cfg.URL == NoRegistry {
		return nil, func() {}, nil
	}
	return registry.NewClient(cfg, logger)
}

// newDirectory composes the directories the client was asked for: the
// registry client (nil: none) and the LAN unless disabled. A LAN that
// cannot open its socket is logged and left out: it never stops a client
// that has a registry. Without a registry the LAN must work, so its error
// is returned then.
func newDirectory(reg *registry.Client, lanCfg LANConfig, logger *slog.Logger) (*app.Directories, func(), error) {
	var primary, local ports.Directory
	if reg != nil { // never a typed nil in the interface
		primary = reg
	}
	closeLAN := func() {}
	if lanCfg.Enabled {
		d, cleanup, err := lan.NewDirectory(lanCfg.Config, logger)
		switch {
		case err == nil:
			local, closeLAN = d, cleanup
		case primary == nil:
			return nil, nil, fmt.Errorf("no registry and no LAN discovery: %w", err)
		default:
			logger.Warn("LAN discovery is off: cannot open its socket", "err", err)
		}
	}
	if primary == nil && local == nil {
		return nil, nil, errors.New("no directory: --registry none needs LAN discovery (--lan)")
	}
	d, err := app.NewDirectories(primary, local)
	if err != nil {
		closeLAN()
		return nil, nil, err
	}
	return d, func() { d.Close(); closeLAN() }, nil
}

// newRendezvous is the registry client's help in reaching peers (STUN,
// signals, relays) for the QUIC transport, or nil with no registry: then
// the transport dials candidates directly and does no punching or relay.
func newRendezvous(reg *registry.Client) ports.Rendezvous {
	if reg == nil { // never a typed nil in the interface
		return nil
	}
	return reg
}

// newMailbox is the registry's mailbox for offline delivery, or nil with
// no registry (offline delivery is then off).
func newMailbox(reg *registry.Client) ports.Mailbox {
	if reg == nil { // never a typed nil in the interface
		return nil
	}
	return reg
}
