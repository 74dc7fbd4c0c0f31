package chatx

import (
	"github.com/chatx/chatx/adapters/files"
	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/registry"
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
	Directory registry.ClientConfig
	Options   app.Options
}

// RegistryConfig is everything cmd/ decides for a registry server.
type RegistryConfig struct {
	Server  registry.ServerConfig
	Data    registry.DataDir
	Service app.RegistryOptions
}

// RegistryServer is a running registry: the service (whose Run reaps expired
// sessions) and the HTTPS server in front of it.
type RegistryServer struct {
	Service *app.Registry
	Server  *registry.Server
}

// newMemoryDirectory is the in-memory directory of InitMemoryClient. It is
// not tied to the client's host (the host's peer verifier needs the
// directory first), so network faults switched on for a host cut its links
// but not its registry session; tests that need both build clients by hand.
func newMemoryDirectory(reg ports.RegistryService, cfg memory.DirectoryConfig) (*memory.Directory, func(), error) {
	return memory.NewDirectory(reg, nil, cfg)
}

// noRendezvous stands in for the registry client's ports.Rendezvous until
// the registry branch implements it (STUN, signals, relays): the QUIC
// transport then does no STUN, no punching and no relay. Switch to
// wire.Bind(new(ports.Rendezvous), new(*registry.Client)) when it does.
func noRendezvous() ports.Rendezvous { return nil }
